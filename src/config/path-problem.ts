// SPDX-License-Identifier: Apache-2.0
/**
 * A problem found in a parsed document, addressed by its JSON path. parse-jsonc.ts turns it into a
 * located ConfigProblem (file:line:column) by looking the path up in the syntax tree.
 */

/** One step of a JSON path: an object key or an array index. */
export type PathSegment = string | number;

/** A validation problem before it is located in the file. */
export interface PathProblem {
  path: readonly PathSegment[];
  message: string;
  /** Point at the key instead of the value (unknown or badly named keys). */
  at?: "key";
  /** Exact offset in the text, when the path alone cannot find it (a duplicate key). */
  offset?: number;
}

const SIMPLE_KEY = /^[A-Za-z0-9_$-]+$/;

/**
 * Renders a path as `groups.default.web.template`; indices as `[0]`, and keys that are not plain
 * words as `["ca.crt"]` so the path stays unambiguous.
 */
export function formatPath(path: readonly PathSegment[], prefix = ""): string {
  let out = prefix;
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (SIMPLE_KEY.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}
