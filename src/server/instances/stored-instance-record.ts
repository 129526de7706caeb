// SPDX-License-Identifier: Apache-2.0
/**
 * The instance record in object storage (`{prefix}instance/{tenant}.{id}.json`, key from
 * instance-record.ts): written `pending` before the provider is called, updated with the
 * provider's handle, marked `deleting` by a delete. It is what a new leader rebuilds its SQLite
 * cache from, so it carries everything needed to recreate the row: while the agent has not
 * registered, that includes the registration nonce (short-lived: it expires at the registration
 * timeout), or an instance created just before a failover could never register.
 */
import type { JsonRecord } from "../api/update-json-object.js";

/** Record statuses (reference §2.5): `pending` from create on, `deleting` after a delete. */
export type StoredInstanceStatus = "pending" | "deleting";

/** A record as the server reads it back. Times are unix ms. */
export interface StoredInstanceRecord {
  instanceId: string;
  tenant: string;
  group: string;
  onDemand: boolean;
  status: StoredInstanceStatus;
  subnetId?: string;
  providerInstanceId?: string;
  instanceType?: string;
  privateIpv4?: string;
  privateIpv6?: string;
  hostname?: string;
  createdAt: number;
  lastUpdated: number;
  /** The registration nonce, while the agent has not registered. Secret: never logged. */
  registrationJwt?: string;
  infraConfigHash: string;
  registeredAt?: number;
  publicKeyPem?: string;
  certSerial?: string;
  /** The instance this one replaces. */
  replaces?: string;
  deletedAt?: number;
  /** Why it was deleted (`delete_reason`), once `deleting`. */
  deleteReason?: string;
  /** Why the drain that ended in the delete was started (`drain_reason`), if one was. */
  drainReason?: string;
}

/** What a new record needs. */
export interface PendingRecordInput {
  instanceId: string;
  tenant: string;
  group: string;
  template: string;
  kind: string;
  arch: string;
  onDemand: boolean;
  subnetId: string;
  subnetPool: string;
  instanceType: string;
  vars: Readonly<Record<string, string>>;
  registrationJwt: string;
  infraConfigHash: string;
  runtimeConfigHash: string;
  reason: string;
  replaces?: string;
  createdAt: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The JSON of a record written before the provider create (reference §5.2 step 6). */
export function pendingRecord(i: PendingRecordInput): JsonRecord {
  return {
    instance_id: i.instanceId,
    tenant: i.tenant,
    group: i.group,
    template: i.template,
    on_demand: i.onDemand,
    subnet_id: i.subnetId,
    provider_instance_id: "",
    instance_type: i.instanceType,
    status: "pending",
    private_ipv4: "",
    private_ipv6: "",
    hostname: "",
    created_at: iso(i.createdAt),
    last_updated: iso(i.createdAt),
    registration_jwt: i.registrationJwt,
    config: {
      template: i.template,
      kind: i.kind,
      arch: i.arch,
      instance_type: i.instanceType,
      subnet_pool: i.subnetPool,
      vars: { ...i.vars },
    },
    tags: {},
    infra_config_hash: i.infraConfigHash,
    runtime_config_hash: i.runtimeConfigHash,
    reason: i.reason,
    ...(i.replaces === undefined ? {} : { replaces: i.replaces }),
  };
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

function time(v: unknown): number | undefined {
  if (typeof v !== "string" || v === "") return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Reads a record's JSON; `undefined` when it lacks what a row needs (instance ID, tenant, group,
 * creation time). Unknown statuses read as `pending` (the instance may still exist).
 */
export function readInstanceRecord(json: unknown): StoredInstanceRecord | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  const r = json as Record<string, unknown>;
  const instanceId = str(r.instance_id);
  const tenant = str(r.tenant);
  const group = str(r.group);
  const createdAt = time(r.created_at);
  if (!instanceId || !tenant || !group || createdAt === undefined) return undefined;
  const rec: StoredInstanceRecord = {
    instanceId,
    tenant,
    group,
    onDemand: r.on_demand === true,
    status: r.status === "deleting" || r.status === "deleted" ? "deleting" : "pending",
    createdAt,
    lastUpdated: time(r.last_updated) ?? createdAt,
    infraConfigHash: str(r.infra_config_hash) ?? "",
  };
  const optional: Array<[keyof StoredInstanceRecord, string | number | undefined]> = [
    ["subnetId", str(r.subnet_id)],
    ["providerInstanceId", str(r.provider_instance_id)],
    ["instanceType", str(r.instance_type)],
    ["privateIpv4", str(r.private_ipv4)],
    ["privateIpv6", str(r.private_ipv6)],
    ["hostname", str(r.hostname)],
    ["registrationJwt", str(r.registration_jwt)],
    ["registeredAt", time(r.registered_at)],
    ["publicKeyPem", str(r.public_key_pem)],
    ["certSerial", str(r.cert_serial)],
    ["replaces", str(r.replaces)],
    ["deletedAt", time(r.deleted_at)],
    ["deleteReason", str(r.delete_reason)],
    ["drainReason", str(r.drain_reason)],
  ];
  const out = rec as unknown as Record<string, unknown>;
  for (const [k, v] of optional) if (v !== undefined) out[k] = v;
  return rec;
}
