// SPDX-License-Identifier: Apache-2.0
/** The operator record in cluster storage: `cluster/operator/{tenant}.{clientId}.json`. */
import { DEFAULT_CLUSTER_PREFIX } from "../../../pki/cluster-identity.js";
import type { ObjectStorage } from "../../../storage/object-storage.js";
import { type JsonRecord, updateJsonObject } from "../update-json-object.js";

/** Storage key of an operator record. */
export function operatorRecordKey(tenant: string, clientId: string): string {
  return `${DEFAULT_CLUSTER_PREFIX}operator/${tenant}.${clientId}.json`;
}

/** Merges `fields` into the operator record at `key` (creating it), with a conditional write. */
export function writeOperatorRecord(
  storage: ObjectStorage,
  key: string,
  fields: JsonRecord,
  signal?: AbortSignal,
): Promise<JsonRecord> {
  return updateJsonObject(storage, key, (current) => ({ ...current, ...fields }), { signal });
}
