// SPDX-License-Identifier: Apache-2.0
/** The args merge rule: objects merge recursively, any other value (arrays included) replaces. */
import type { JsonObject, JsonValue } from "./server-config.js";

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Merges `layers` left to right into a new object; the inputs are not modified. */
export function deepMerge(...layers: ReadonlyArray<Readonly<JsonObject> | undefined>): JsonObject {
  const out: JsonObject = {};
  for (const layer of layers) {
    if (layer === undefined) continue;
    for (const [key, value] of Object.entries(layer)) {
      const prev = out[key];
      const next =
        isObject(prev) && isObject(value) ? deepMerge(prev, value) : structuredClone(value);
      // defineProperty keeps a "__proto__" key an ordinary key.
      Object.defineProperty(out, key, {
        value: next,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return out;
}
