// SPDX-License-Identifier: Apache-2.0
/** The etag of the memory and file backends, matching what S3 reports for a single-part upload. */
import { createHash } from "node:crypto";

/** Lower-case hex MD5 of `body`. */
export function md5Etag(body: Buffer): string {
  return createHash("md5").update(body).digest("hex");
}

/** Converts a put body to bytes (strings are UTF-8). */
export function toBodyBuffer(body: Buffer | string): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : body;
}
