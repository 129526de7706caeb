// SPDX-License-Identifier: Apache-2.0
/**
 * Key rules shared by every backend. They are the file backend's constraints (a key is a relative
 * path), applied everywhere so that code tested against memory or S3 also works on a directory.
 */
import { NstanceError } from "../shared/errors.js";

/** Names the file backend uses for its in-flight temp files; keys may not use them. */
export const TEMP_FILE_PREFIX = ".nstance-tmp-";

/** Returns why `key` is not a valid object key, or `undefined` when it is. */
export function objectKeyProblem(key: string): string | undefined {
  if (key === "") return "key is empty";
  if (key.startsWith("/")) return "key must be relative (starts with /)";
  if (key.endsWith("/")) return "key must not end with /";
  if (key.includes("\0")) return "key contains a NUL byte";
  if (key.includes("\\")) return "key contains a backslash";
  for (const segment of key.split("/")) {
    if (segment === "") return "key has an empty path segment (//)";
    if (segment === "." || segment === "..") return `key has a "${segment}" path segment`;
    if (segment.startsWith(TEMP_FILE_PREFIX)) {
      return `key segment starts with the reserved ${TEMP_FILE_PREFIX}`;
    }
    if (Buffer.byteLength(segment) > 255) return "key segment is longer than 255 bytes";
  }
  return undefined;
}

/** Throws NstanceError `invalid_argument` when `key` is not a valid object key. */
export function validateObjectKey(key: string): void {
  const problem = objectKeyProblem(key);
  if (problem !== undefined) {
    throw new NstanceError(
      "invalid_argument",
      `invalid object key ${JSON.stringify(key)}: ${problem}`,
    );
  }
}

/**
 * Throws NstanceError `invalid_argument` when `prefix` cannot start a valid key. A prefix may be
 * empty, may end with `/`, and may end in the middle of a segment (`instance/web.`).
 */
export function validateKeyPrefix(prefix: string): void {
  if (prefix === "") return;
  // A prefix is valid when some key starting with it is valid; appending one character makes a
  // prefix that ends with "/" or a partial segment into a candidate key.
  const problem = objectKeyProblem(prefix.endsWith("/") ? `${prefix}x` : prefix);
  const partialDots = /(^|\/)\.{1,2}$/.test(prefix);
  if (problem !== undefined && !partialDots) {
    throw new NstanceError(
      "invalid_argument",
      `invalid key prefix ${JSON.stringify(prefix)}: ${problem.replace(/^key/, "prefix")}`,
    );
  }
}
