// SPDX-License-Identifier: Apache-2.0
/**
 * The instance record in object storage (`{prefix}instance/{tenant}.{id}.json`): the durable copy
 * of what SQLite caches about an instance (reference §2.5, snake_case JSON).
 */
import type { InstanceRow } from "../../../db/instances-table.js";
import type { JsonRecord } from "../update-json-object.js";

/** Storage key of an instance record. */
export function instanceRecordKey(prefix: string, tenant: string, instanceId: string): string {
  return `${prefix}instance/${tenant}.${instanceId}.json`;
}

/**
 * A record rebuilt from the SQLite row, for when none exists in storage yet (the server stopped
 * between inserting the row and writing the record). The nonce is not copied: it is a credential.
 */
export function instanceRecordFromRow(row: InstanceRow): JsonRecord {
  return {
    instance_id: row.id,
    tenant: row.tenant,
    group: row.groupKey,
    on_demand: row.onDemand,
    subnet_id: row.subnetId ?? "",
    provider_instance_id: row.providerId ?? "",
    instance_type: row.instanceType ?? "",
    status: "pending",
    private_ipv4: row.ip4 ?? "",
    private_ipv6: row.ip6 ?? "",
    hostname: row.hostname ?? "",
    created_at: new Date(row.createdAt).toISOString(),
    last_updated: new Date(row.updatedAt).toISOString(),
    infra_config_hash: row.infraConfigHash,
  };
}
