// SPDX-License-Identifier: Apache-2.0
/**
 * A small schema-description language. One description drives three things: checking a parsed
 * document and filling its defaults (check-schema.ts), the JSON Schema (json-schema.ts) and the
 * configuration reference (config-docs.ts).
 */

/** What every node carries. */
interface BaseNode {
  /** One or two sentences for the docs and the JSON Schema `description`. */
  doc: string;
  /** Must be present in its parent object. */
  required?: boolean;
  /** Used when absent; object and map defaults (`{}`) are filled in recursively. */
  default?: unknown;
  /** Emitted once under `$defs` with this name (and as its own section in the docs). */
  defName?: string;
  /** The shared description of a `defName` node reused with its own `doc` (see {@link withDoc}). */
  defDoc?: string;
}

/** String formats with a dedicated check. */
export type StringFormat = "identifier" | "host-port" | "ip";

/** A string, optionally restricted to an enum, a pattern or a format. */
export interface StringNode extends BaseNode {
  type: "string";
  enum?: readonly string[];
  /** ECMAScript regular expression the whole value must match. */
  pattern?: string;
  /** Shown instead of the pattern when it does not match (`must be three lowercase letters`). */
  patternHint?: string;
  format?: StringFormat;
  minLength?: number;
}

/** A Go duration string (`90s`, `1h30m`); `min` bounds it. */
export interface DurationNode extends BaseNode {
  type: "duration";
  min?: "non-negative" | "positive";
}

/** An integer. */
export interface IntegerNode extends BaseNode {
  type: "integer";
  minimum?: number;
  maximum?: number;
}

/** A boolean. */
export interface BooleanNode extends BaseNode {
  type: "boolean";
}

/** Free-form JSON: any value, or any object. */
export interface JsonNode extends BaseNode {
  type: "json";
  shape: "any" | "object";
}

/** An array. */
export interface ArrayNode extends BaseNode {
  type: "array";
  items: SchemaNode;
  minItems?: number;
  uniqueItems?: boolean;
}

/** How map keys are checked. */
export interface MapKeys {
  /** Placeholder in docs paths: `groups.<tenant>.<group>`. */
  name: string;
  format?: "identifier";
  pattern?: string;
  patternHint?: string;
}

/** An object with arbitrary keys and uniform values. */
export interface MapNode extends BaseNode {
  type: "map";
  keys: MapKeys;
  values: SchemaNode;
  minEntries?: number;
  /** Accept a top-level `$schema` string (editors use it to find the JSON Schema). */
  allowSchemaKey?: boolean;
}

/**
 * A conditional rule on an object: when `field` holds one of `in`, the `require`d fields must be
 * present, the `forbid`den ones absent, and fields in `shapes` must also match the narrower node.
 */
export interface ObjectRule {
  when: { field: string; in: readonly string[] };
  require?: readonly string[];
  forbid?: readonly string[];
  shapes?: Readonly<Record<string, SchemaNode>>;
}

/** An object with known fields; any other key is a problem. */
export interface ObjectNode extends BaseNode {
  type: "object";
  fields: Readonly<Record<string, SchemaNode>>;
  rules?: readonly ObjectRule[];
  /** Accept a top-level `$schema` string (editors use it to find the JSON Schema). */
  allowSchemaKey?: boolean;
}

/** Any schema node. */
export type SchemaNode =
  | StringNode
  | DurationNode
  | IntegerNode
  | BooleanNode
  | JsonNode
  | ArrayNode
  | MapNode
  | ObjectNode;

type Opts<N> = Omit<N, "type" | "doc">;

/** A string. */
export const str = (doc: string, o: Opts<StringNode> = {}): StringNode => ({
  type: "string",
  doc,
  ...o,
});
/** A string restricted to `values`. */
export const oneOf = (
  doc: string,
  values: readonly string[],
  o: Opts<StringNode> = {},
): StringNode => ({
  type: "string",
  doc,
  enum: values,
  ...o,
});
/** An identifier (see identifier.ts). */
export const identifier = (doc: string, o: Opts<StringNode> = {}): StringNode => ({
  type: "string",
  doc,
  format: "identifier",
  ...o,
});
/** A `host:port` address. */
export const hostPort = (doc: string, o: Opts<StringNode> = {}): StringNode => ({
  type: "string",
  doc,
  format: "host-port",
  ...o,
});
/** A Go duration. */
export const duration = (doc: string, o: Opts<DurationNode> = {}): DurationNode => ({
  type: "duration",
  doc,
  ...o,
});
/** An integer. */
export const int = (doc: string, o: Opts<IntegerNode> = {}): IntegerNode => ({
  type: "integer",
  doc,
  ...o,
});
/** A boolean. */
export const bool = (doc: string, o: Opts<BooleanNode> = {}): BooleanNode => ({
  type: "boolean",
  doc,
  ...o,
});
/** Free-form JSON. */
export const json = (
  doc: string,
  shape: JsonNode["shape"],
  o: Opts<Omit<JsonNode, "shape">> = {},
): JsonNode => ({
  type: "json",
  doc,
  shape,
  ...o,
});
/** An array of `items`. */
export const arr = (
  doc: string,
  items: SchemaNode,
  o: Opts<Omit<ArrayNode, "items">> = {},
): ArrayNode => ({
  type: "array",
  doc,
  items,
  ...o,
});
/** A map from checked keys to `values`. */
export const map = (
  doc: string,
  keys: MapKeys,
  values: SchemaNode,
  o: Opts<Omit<MapNode, "keys" | "values">> = {},
): MapNode => ({ type: "map", doc, keys, values, ...o });
/** An object with known `fields`. */
export const obj = (
  doc: string,
  fields: Record<string, SchemaNode>,
  o: Opts<Omit<ObjectNode, "fields">> = {},
): ObjectNode => ({ type: "object", doc, fields, ...o });

/** Reuses a named node at another place with a description of its own. */
export const withDoc = <N extends SchemaNode>(node: N, doc: string): N => ({
  ...node,
  doc,
  defDoc: node.defDoc ?? node.doc,
});
