// SPDX-License-Identifier: Apache-2.0
/** The one key order every backend's list() returns. */

/** Orders objects by key, comparing UTF-8 bytes as S3 and GCS do. */
export function compareKeys(a: { key: string }, b: { key: string }): number {
  if (a.key === b.key) return 0;
  return Buffer.compare(Buffer.from(a.key, "utf8"), Buffer.from(b.key, "utf8"));
}
