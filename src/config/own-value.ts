// SPDX-License-Identifier: Apache-2.0
/**
 * Lookups by names that come from files and requests. `record[name]` on a plain object finds
 * inherited members too: a group named `constructor` (a valid name) would find Object's
 * constructor function and be taken for a configured group.
 */

/** `record[key]` when `record` has `key` as its own property, else undefined. */
export function ownValue<T>(
  record: Readonly<Record<string, T>> | undefined,
  key: string,
): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}
