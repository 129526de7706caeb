// SPDX-License-Identifier: Apache-2.0
/**
 * The userdata text of a group, before templating: inline content or a fetched URL, decoded from
 * its `encoding` (plain, base64, gzip, base64+gzip).
 */
import { gunzipSync } from "node:zlib";
import type { UserdataConfig } from "../../config/server-config.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";

/** Fetches a URL's bytes; injectable for tests. */
export type FetchBytes = (url: string, signal?: AbortSignal) => Promise<Buffer>;

/** Largest userdata accepted from a URL (cloud providers accept 16–256 KiB). */
export const DEFAULT_MAX_USERDATA_BYTES = 1024 * 1024;

/** Fetches with the global `fetch`; non-2xx answers and oversized bodies throw. */
export const fetchBytes: FetchBytes = async (url, signal) => {
  const res = await fetch(url, signal ? { signal } : {});
  if (!res.ok) throw new NstanceError("unavailable", `userdata ${url}: HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > DEFAULT_MAX_USERDATA_BYTES) {
    throw new NstanceError(
      "invalid_argument",
      `userdata ${url} is larger than ${DEFAULT_MAX_USERDATA_BYTES} bytes`,
    );
  }
  return body;
};

/** The decoded userdata text. Throws NstanceError `invalid_argument` for undecodable content. */
export async function resolveUserdata(
  u: UserdataConfig,
  fetchFn: FetchBytes = fetchBytes,
  signal?: AbortSignal,
): Promise<string> {
  let raw: Buffer =
    u.source === "url" ? await fetchFn(u.content, signal) : Buffer.from(u.content, "utf8");
  try {
    if (u.encoding === "base64" || u.encoding === "base64+gzip") {
      raw = Buffer.from(raw.toString("utf8").trim(), "base64");
    }
    if (u.encoding === "gzip" || u.encoding === "base64+gzip") raw = gunzipSync(raw);
  } catch (err) {
    throw new NstanceError(
      "invalid_argument",
      `userdata is not valid ${u.encoding}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  return raw.toString("utf8");
}
