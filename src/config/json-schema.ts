// SPDX-License-Identifier: Apache-2.0
/**
 * Generates JSON Schema (draft 2020-12) from the config schema, for editors and external tooling.
 * scripts/gen-schema.ts writes it to schema/; a test keeps the committed files in step.
 */
import { CONFIG_SCHEMA, GROUPS_SCHEMA } from "./config-schema.js";
import { HOST_PORT_PATTERN } from "./host-port.js";
import { IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN } from "./identifier.js";
import type { MapNode, ObjectNode, ObjectRule, SchemaNode } from "./schema-dsl.js";
import type { JsonObject, JsonValue } from "./server-config.js";

/** Pattern of a non-negative Go duration. */
export const DURATION_PATTERN = "^(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$";
/** Pattern of a Go duration that may be negative. */
export const SIGNED_DURATION_PATTERN =
  "^[-+]?(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))+)$";

const DRAFT = "https://json-schema.org/draft/2020-12/schema";

class Converter {
  readonly defs = new Map<string, JsonObject>();

  convert(node: SchemaNode): JsonObject {
    if (node.defName === undefined) return this.body(node, true);
    if (!this.defs.has(node.defName)) {
      this.defs.set(node.defName, {}); // placeholder against recursion
      this.defs.set(node.defName, {
        ...((node.defDoc ?? node.doc) ? { description: node.defDoc ?? node.doc } : {}),
        ...this.body(node, false),
      });
    }
    return {
      $ref: `#/$defs/${node.defName}`,
      ...(node.defDoc !== undefined && node.doc ? { description: node.doc } : {}),
      ...(node.default !== undefined ? { default: node.default as JsonValue } : {}),
    };
  }

  /** The node's own keywords; `withMeta` adds description and default (not used for $defs). */
  private body(node: SchemaNode, withMeta: boolean): JsonObject {
    const meta: JsonObject = {};
    if (withMeta && node.doc) meta.description = node.doc;
    if (withMeta && node.default !== undefined) meta.default = node.default as JsonValue;
    switch (node.type) {
      case "string": {
        const s: JsonObject = { type: "string" };
        if (node.enum) s.enum = [...node.enum];
        if (node.minLength !== undefined) s.minLength = node.minLength;
        if (node.pattern !== undefined) s.pattern = node.pattern;
        if (node.format === "identifier") {
          s.pattern = IDENTIFIER_PATTERN;
          s.maxLength = IDENTIFIER_MAX_LENGTH;
        } else if (node.format === "host-port") {
          s.pattern = HOST_PORT_PATTERN;
        } else if (node.format === "ip") {
          s.anyOf = [{ format: "ipv4" }, { format: "ipv6" }];
        }
        return { ...meta, ...s };
      }
      case "duration":
        return {
          ...meta,
          type: "string",
          pattern: node.min === undefined ? SIGNED_DURATION_PATTERN : DURATION_PATTERN,
        };
      case "integer":
        return {
          ...meta,
          type: "integer",
          ...(node.minimum !== undefined ? { minimum: node.minimum } : {}),
          ...(node.maximum !== undefined ? { maximum: node.maximum } : {}),
        };
      case "boolean":
        return { ...meta, type: "boolean" };
      case "json":
        return node.shape === "object" ? { ...meta, type: "object" } : meta;
      case "array":
        return {
          ...meta,
          type: "array",
          items: this.convert(node.items),
          ...(node.minItems !== undefined ? { minItems: node.minItems } : {}),
          ...(node.uniqueItems ? { uniqueItems: true } : {}),
        };
      case "map":
        return { ...meta, ...this.map(node) };
      case "object":
        return { ...meta, ...this.object(node) };
    }
  }

  private map(node: MapNode): JsonObject {
    let names: JsonObject | undefined;
    if (node.keys.format === "identifier")
      names = { pattern: IDENTIFIER_PATTERN, maxLength: IDENTIFIER_MAX_LENGTH };
    else if (node.keys.pattern !== undefined) names = { pattern: node.keys.pattern };
    else names = { minLength: 1 };
    const out: JsonObject = { type: "object" };
    if (node.allowSchemaKey) {
      out.properties = {
        $schema: { type: "string", description: "URL of this JSON Schema (for editors)." },
      };
      names = { anyOf: [{ const: "$schema" }, names] };
    }
    out.propertyNames = names;
    out.additionalProperties = this.convert(node.values);
    if (node.minEntries !== undefined) out.minProperties = node.minEntries;
    return out;
  }

  private object(node: ObjectNode): JsonObject {
    const properties: JsonObject = {};
    if (node.allowSchemaKey) {
      properties.$schema = {
        type: "string",
        description: "URL of this JSON Schema (for editors).",
      };
    }
    for (const [name, field] of Object.entries(node.fields)) properties[name] = this.convert(field);
    const required = Object.entries(node.fields)
      .filter(([, f]) => f.required)
      .map(([name]) => name);
    return {
      type: "object",
      properties,
      ...(required.length > 0 ? { required } : {}),
      additionalProperties: false,
      ...(node.rules?.length ? { allOf: node.rules.map((r) => this.rule(r)) } : {}),
    };
  }

  private rule(rule: ObjectRule): JsonObject {
    const then: JsonObject = {};
    if (rule.require?.length) then.required = [...rule.require];
    const props: JsonObject = {};
    for (const f of rule.forbid ?? []) props[f] = false;
    for (const [f, shape] of Object.entries(rule.shapes ?? {})) props[f] = this.convert(shape);
    if (Object.keys(props).length > 0) then.properties = props;
    return {
      if: {
        properties: { [rule.when.field]: { enum: [...rule.when.in] } },
        required: [rule.when.field],
      },
      then,
    };
  }
}

/** The JSON Schema of `node` (by default the static config schema). */
export function toJsonSchema(
  node: SchemaNode = CONFIG_SCHEMA,
  title = "nstance static configuration",
): JsonObject {
  const c = new Converter();
  const root = c.convert(node);
  const defs = Object.fromEntries([...c.defs.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  return {
    $schema: DRAFT,
    title,
    ...root,
    ...(Object.keys(defs).length > 0 ? { $defs: defs } : {}),
  };
}

/** The JSON Schema of the dynamic groups file. */
export function toGroupsJsonSchema(): JsonObject {
  return toJsonSchema(GROUPS_SCHEMA, "nstance dynamic groups");
}

/** Serialises a schema as committed in schema/ (2-space JSON, trailing newline). */
export function formatJsonSchema(schema: JsonObject): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}
