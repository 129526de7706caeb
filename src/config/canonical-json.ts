// SPDX-License-Identifier: Apache-2.0
/** Canonical JSON: object keys sorted at every level, so equal data always gives equal text. */

/**
 * Serialises like JSON.stringify (undefined properties dropped, non-finite numbers as null) but
 * with object keys sorted by code unit, so the output does not depend on key order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const s = JSON.stringify(value);
    return s === undefined ? "null" : s;
  }
  if (Array.isArray(value))
    return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined && typeof v !== "function")
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}
