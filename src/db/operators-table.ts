// SPDX-License-Identifier: Apache-2.0
/**
 * Queries over the `operators` table: operators registered or renewed through this server. The
 * durable record is `cluster/operator/{tenant}.{id}.json` in object storage; this is its cache.
 */
import type { Db } from "./database.js";

/** An operator row (timestamps are unix milliseconds). */
export interface OperatorRow {
  /** The operator's client ID (its certificate CN). */
  id: string;
  tenant: string;
  /** PKIX PEM public key of the latest certificate. */
  publicKey: string;
  certSerial: string | undefined;
  registeredAt: number;
}

/** Inserts or replaces the row of operator `row.id` (registration and renewal). */
export function upsertOperator(db: Db, row: OperatorRow): void {
  db.prepare(
    `INSERT INTO operators (id, tenant, public_key, cert_serial, registered_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, public_key = excluded.public_key,
       cert_serial = excluded.cert_serial, registered_at = excluded.registered_at`,
  ).run(row.id, row.tenant, row.publicKey, row.certSerial ?? null, row.registeredAt);
}

interface RawOperatorRow {
  id: string;
  tenant: string;
  public_key: string;
  cert_serial: string | null;
  registered_at: number;
}

const toRow = (r: RawOperatorRow): OperatorRow => ({
  id: r.id,
  tenant: r.tenant,
  publicKey: r.public_key,
  certSerial: r.cert_serial ?? undefined,
  registeredAt: r.registered_at,
});

/** The row of operator `id`, or `undefined`. */
export function getOperator(db: Db, id: string): OperatorRow | undefined {
  const r = db.prepare("SELECT * FROM operators WHERE id = ?").get(id) as
    | RawOperatorRow
    | undefined;
  return r && toRow(r);
}

/** Every operator of a tenant, by ID. */
export function listOperators(db: Db, tenant: string): OperatorRow[] {
  const rows = db
    .prepare("SELECT * FROM operators WHERE tenant = ? ORDER BY id")
    .all(tenant) as RawOperatorRow[];
  return rows.map(toRow);
}
