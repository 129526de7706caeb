// SPDX-License-Identifier: Apache-2.0
/**
 * Queries over the `instances` table (and an instance's `decisions`). A row is created before the VM
 * exists, carrying the registration nonce the VM will present; registration fills in the agent's
 * key, addresses and certificate serial. "Active" rows are not soft-deleted and their provider state
 * is not `deleting`/`deleted` (reference §2.6).
 */
import type { Db } from "./database.js";

/** Provider statuses after which an instance no longer counts as active. */
export const INACTIVE_PROVIDER_STATUSES = ["deleting", "deleted"] as const;

/** An instance row (timestamps are unix milliseconds). */
export interface InstanceRow {
  id: string;
  tenant: string;
  groupKey: string;
  onDemand: boolean;
  providerId: string | undefined;
  providerAt: number | undefined;
  /** The provider's last answer, e.g. `{ "status": "running" }`. */
  providerState: Record<string, unknown> | undefined;
  subnetId: string | undefined;
  instanceType: string | undefined;
  hostname: string | undefined;
  ip4: string | undefined;
  ip6: string | undefined;
  /** The registration nonce JWT issued for this instance (single use). */
  nonce: string;
  issuedAt: number;
  /** The agent's identity public key (PKIX PEM), once registered. */
  instancePub: string | undefined;
  certSerial: string | undefined;
  registeredAt: number | undefined;
  healthAt: number | undefined;
  configHash: string | undefined;
  infraConfigHash: string;
  unhealthyAt: number | undefined;
  unhealthyReason: string | undefined;
  drainStartedAt: number | undefined;
  drainDeadlineAt: number | undefined;
  drainReason: string | undefined;
  drainAckedAt: number | undefined;
  createdAt: number;
  updatedAt: number;
  deletedAt: number | undefined;
}

/** What {@link insertPendingInstance} needs: an instance the server is about to create. */
export interface NewInstance {
  id: string;
  tenant: string;
  groupKey: string;
  onDemand?: boolean;
  nonce: string;
  infraConfigHash: string;
  subnetId?: string;
  instanceType?: string;
  /** Issue time of the nonce and creation time of the row. */
  createdAt: number;
}

/** What registration records about an instance. */
export interface InstanceRegistration {
  id: string;
  registeredAt: number;
  instancePub: string;
  certSerial: string;
  /** Agent-reported addresses; an empty or absent value keeps the stored one. */
  ip4?: string;
  ip6?: string;
  hostname?: string;
}

interface RawInstanceRow {
  id: string;
  tenant: string;
  group_key: string;
  on_demand: number;
  provider_id: string | null;
  provider_at: number | null;
  provider_state: string | null;
  subnet_id: string | null;
  instance_type: string | null;
  hostname: string | null;
  ip4: string | null;
  ip6: string | null;
  nonce: string;
  issued_at: number;
  instance_pub: string | null;
  cert_serial: string | null;
  registered_at: number | null;
  health_at: number | null;
  config_hash: string | null;
  infra_config_hash: string;
  unhealthy_at: number | null;
  unhealthy_reason: string | null;
  drain_started_at: number | null;
  drain_deadline_at: number | null;
  drain_reason: string | null;
  drain_acked_at: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function parseProviderState(text: string | null): Record<string, unknown> | undefined {
  if (text === null) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === "object" ? (v as Record<string, unknown>) : undefined;
  } catch {
    // A cache row with unreadable JSON behaves as "no provider answer yet"; the next check rewrites it.
    return undefined;
  }
}

function toRow(r: RawInstanceRow): InstanceRow {
  return {
    id: r.id,
    tenant: r.tenant,
    groupKey: r.group_key,
    onDemand: r.on_demand === 1,
    providerId: opt(r.provider_id),
    providerAt: opt(r.provider_at),
    providerState: parseProviderState(r.provider_state),
    subnetId: opt(r.subnet_id),
    instanceType: opt(r.instance_type),
    hostname: opt(r.hostname),
    ip4: opt(r.ip4),
    ip6: opt(r.ip6),
    nonce: r.nonce,
    issuedAt: r.issued_at,
    instancePub: opt(r.instance_pub),
    certSerial: opt(r.cert_serial),
    registeredAt: opt(r.registered_at),
    healthAt: opt(r.health_at),
    configHash: opt(r.config_hash),
    infraConfigHash: r.infra_config_hash,
    unhealthyAt: opt(r.unhealthy_at),
    unhealthyReason: opt(r.unhealthy_reason),
    drainStartedAt: opt(r.drain_started_at),
    drainDeadlineAt: opt(r.drain_deadline_at),
    drainReason: opt(r.drain_reason),
    drainAckedAt: opt(r.drain_acked_at),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    deletedAt: opt(r.deleted_at),
  };
}

/** The provider status of a row (`provider_state.status`), if the provider has answered. */
export function providerStatusOf(row: InstanceRow): string | undefined {
  const s = row.providerState?.status;
  return typeof s === "string" ? s : undefined;
}

/** True when the row is neither soft-deleted nor being deleted by the provider. */
export function isActiveInstance(row: InstanceRow): boolean {
  const s = providerStatusOf(row);
  return (
    row.deletedAt === undefined &&
    !(INACTIVE_PROVIDER_STATUSES as readonly string[]).includes(s ?? "")
  );
}

/**
 * Inserts the row of an instance about to be created, with the nonce its agent will register with.
 * Throws (SQLite constraint) when the ID or the nonce already exists.
 */
export function insertPendingInstance(db: Db, i: NewInstance): void {
  db.prepare(
    `INSERT INTO instances (id, tenant, group_key, on_demand, subnet_id, instance_type, nonce,
       issued_at, infra_config_hash, created_at, updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    i.id,
    i.tenant,
    i.groupKey,
    i.onDemand ? 1 : 0,
    i.subnetId ?? null,
    i.instanceType ?? null,
    i.nonce,
    i.createdAt,
    i.infraConfigHash,
    i.createdAt,
    i.createdAt,
  );
}

/** The row of instance `id` (soft-deleted rows included), or `undefined`. */
export function getInstance(db: Db, id: string): InstanceRow | undefined {
  const r = db.prepare("SELECT * FROM instances WHERE id = ?").get(id) as
    | RawInstanceRow
    | undefined;
  return r && toRow(r);
}

/** The row whose registration nonce is exactly `nonce`, or `undefined`. */
export function findInstanceByNonce(db: Db, nonce: string): InstanceRow | undefined {
  const r = db.prepare("SELECT * FROM instances WHERE nonce = ?").get(nonce) as
    | RawInstanceRow
    | undefined;
  return r && toRow(r);
}

/**
 * Records a registration. Only an unregistered, not deleted row changes, so this is also the last
 * single-use gate: returns false when the instance was registered (or deleted) meanwhile.
 */
export function markInstanceRegistered(db: Db, reg: InstanceRegistration): boolean {
  const res = db
    .prepare(
      `UPDATE instances SET registered_at = ?, instance_pub = ?, cert_serial = ?,
         ip4 = COALESCE(NULLIF(?, ''), ip4), ip6 = COALESCE(NULLIF(?, ''), ip6),
         hostname = COALESCE(NULLIF(?, ''), hostname), updated_at = ?
       WHERE id = ? AND registered_at IS NULL AND deleted_at IS NULL`,
    )
    .run(
      reg.registeredAt,
      reg.instancePub,
      reg.certSerial,
      reg.ip4 ?? "",
      reg.ip6 ?? "",
      reg.hostname ?? "",
      reg.registeredAt,
      reg.id,
    );
  return res.changes === 1;
}

/** What an agent certificate renewal records about an instance. */
export interface InstanceCertRenewal {
  id: string;
  /** The serial being replaced, exactly as stored; the row changes only while it holds this one. */
  previousSerial: string;
  certSerial: string;
  /** Unix ms. */
  renewedAt: number;
}

/**
 * Records an agent certificate renewal: `cert_serial` becomes the new serial, on a registered, not
 * deleted row that still holds `previousSerial` (so a delete or a concurrent renewal wins).
 * Returns whether the row changed.
 */
export function renewInstanceCertSerial(db: Db, r: InstanceCertRenewal): boolean {
  const res = db
    .prepare(
      `UPDATE instances SET cert_serial = ?, updated_at = ?
       WHERE id = ? AND cert_serial = ? AND registered_at IS NOT NULL AND deleted_at IS NULL`,
    )
    .run(r.certSerial, r.renewedAt, r.id, r.previousSerial);
  return res.changes === 1;
}

const ACTIVE_SQL = `deleted_at IS NULL AND COALESCE(json_extract(provider_state, '$.status'), '')
  NOT IN (${INACTIVE_PROVIDER_STATUSES.map((s) => `'${s}'`).join(", ")})`;

/** Active rows of one group (managed and on-demand), oldest first. */
export function listActiveInstancesByGroup(
  db: Db,
  tenant: string,
  groupKey: string,
): InstanceRow[] {
  const rows = db
    .prepare(
      `SELECT * FROM instances WHERE tenant = ? AND group_key = ? AND ${ACTIVE_SQL}
       ORDER BY created_at, id`,
    )
    .all(tenant, groupKey) as RawInstanceRow[];
  return rows.map(toRow);
}

/**
 * Every row of a tenant (soft-deleted rows still kept included, so recent deletions stay visible),
 * optionally of one group, oldest first.
 */
export function listTenantInstances(db: Db, tenant: string, groupKey?: string): InstanceRow[] {
  const rows = (
    groupKey === undefined
      ? db.prepare("SELECT * FROM instances WHERE tenant = ? ORDER BY created_at, id").all(tenant)
      : db
          .prepare(
            "SELECT * FROM instances WHERE tenant = ? AND group_key = ? ORDER BY created_at, id",
          )
          .all(tenant, groupKey)
  ) as RawInstanceRow[];
  return rows.map(toRow);
}

/** One recorded decision about an instance. */
export interface InstanceDecision {
  seq: number;
  at: number;
  decision: string;
  reason: string;
  /** The facts the decision rested on. */
  evidence: Record<string, unknown>;
}

/** Every decision recorded about instance `id`, oldest first. */
export function listInstanceDecisions(db: Db, id: string): InstanceDecision[] {
  const rows = db
    .prepare(
      "SELECT seq, at, decision, reason, evidence FROM decisions WHERE instance_id = ? ORDER BY seq",
    )
    .all(id) as Array<{
    seq: number;
    at: number;
    decision: string;
    reason: string;
    evidence: string;
  }>;
  return rows.map((r) => {
    let evidence: Record<string, unknown> = {};
    try {
      const v = JSON.parse(r.evidence) as unknown;
      if (v !== null && typeof v === "object") evidence = v as Record<string, unknown>;
    } catch {
      // Unreadable evidence is shown as none rather than hiding the decision itself.
    }
    return { seq: r.seq, at: r.at, decision: r.decision, reason: r.reason, evidence };
  });
}
