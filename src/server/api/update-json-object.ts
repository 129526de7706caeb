// SPDX-License-Identifier: Apache-2.0
/**
 * Read-modify-write of a JSON object in storage with a conditional put: If-Match the etag read, or
 * create-only when the object is missing; re-read and retried when another writer got in between.
 */
import { NstanceError, PreconditionFailedError } from "../../shared/errors.js";
import type { ObjectStorage } from "../../storage/object-storage.js";

/** Retries of an update that lost its conditional put. */
export const DEFAULT_JSON_WRITE_RETRIES = 4;

/** A JSON object as stored (snake_case keys). */
export type JsonRecord = Record<string, unknown>;

/**
 * Applies `update` to the JSON object at `key` (`undefined` when it does not exist yet), writes the
 * result pretty-printed and returns it. Throws PreconditionFailedError when every retry lost.
 */
export async function updateJsonObject(
  storage: ObjectStorage,
  key: string,
  update: (current: JsonRecord | undefined) => JsonRecord,
  opts: { retries?: number; signal?: AbortSignal } = {},
): Promise<JsonRecord> {
  const retries = opts.retries ?? DEFAULT_JSON_WRITE_RETRIES;
  for (let attempt = 0; ; attempt++) {
    const obj = await storage.get(key, opts.signal);
    let current: JsonRecord | undefined;
    if (obj) {
      try {
        current = JSON.parse(obj.body.toString("utf8")) as JsonRecord;
      } catch (err) {
        throw new NstanceError("internal", `${key} is not valid JSON`, { cause: err });
      }
    }
    const next = update(current);
    try {
      await storage.put(key, `${JSON.stringify(next, null, 2)}\n`, {
        condition: obj ? { ifMatch: obj.etag } : { ifNoneMatch: "*" },
        contentType: "application/json",
        signal: opts.signal,
      });
      return next;
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || attempt >= retries) throw err;
    }
  }
}
