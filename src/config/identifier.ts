// SPDX-License-Identifier: Apache-2.0
/** The identifier rule for cluster, shard, tenant, group, template and subnet pool names. */

/** Longest identifier. */
export const IDENTIFIER_MAX_LENGTH = 32;
/** Lowercase letters, digits and single hyphens, starting and ending with a letter or digit. */
export const IDENTIFIER_PATTERN = "^(?!.*--)[a-z0-9]([a-z0-9-]*[a-z0-9])?$";

const SHAPE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Why `s` is not a valid identifier, or `undefined` when it is. */
export function identifierProblem(s: string): string | undefined {
  if (s === "") return "must not be empty";
  if (s.length > IDENTIFIER_MAX_LENGTH) {
    return `must be at most ${IDENTIFIER_MAX_LENGTH} characters (has ${s.length})`;
  }
  if (s.includes("--")) return `must not contain "--"`;
  if (!SHAPE.test(s)) {
    return "must contain only lowercase letters, digits and hyphens, and start and end with a letter or digit";
  }
  return undefined;
}

/** True when `s` is a valid identifier. */
export function isIdentifier(s: string): boolean {
  return identifierProblem(s) === undefined;
}
