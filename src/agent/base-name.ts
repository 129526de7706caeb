// SPDX-License-Identifier: Apache-2.0
/**
 * Validation of the plain file names the server may ask the agent to write (received files and
 * key names). Anything that could reach outside the target directory is refused.
 */

/** Matches a UTF-16 surrogate without its partner. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Longest file name Linux accepts (NAME_MAX), in UTF-8 bytes. */
export const MAX_BASE_NAME_BYTES = 255;

/**
 * Returns why `name` is not a safe plain base name, or `undefined` when it is. Refused: empty,
 * `/` or `\`, `..`, a leading dot, NUL or control characters, lone UTF-16 surrogates (they would
 * be written under a different name), and names over {@link MAX_BASE_NAME_BYTES} bytes.
 */
export function checkBaseName(name: string): string | undefined {
  if (name === "") return "empty file name";
  if (name.includes("/") || name.includes("\\")) return "file name contains a path separator";
  if (name.includes("..")) return 'file name contains ".."';
  if (name.startsWith(".")) return "file name starts with a dot";
  if (/\p{Cc}/u.test(name)) return "file name contains a control character";
  if (LONE_SURROGATE.test(name)) return "file name is not valid Unicode";
  if (name.trim() !== name) return "file name has leading or trailing whitespace";
  if (Buffer.byteLength(name, "utf8") > MAX_BASE_NAME_BYTES) {
    return `file name is longer than ${MAX_BASE_NAME_BYTES} bytes`;
  }
  return undefined;
}
