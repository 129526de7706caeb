// SPDX-License-Identifier: Apache-2.0
/** The instance an agent call comes from: its certificate's CN, checked against SQLite. */
import type BetterSqlite3 from "better-sqlite3";
import type { Db } from "../../db/database.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import { NstanceError } from "../../shared/errors.js";
import type { InstanceRef } from "./file-delivery.js";

/**
 * The instance of an agent certificate. Throws NstanceError `not_found` when this shard has no
 * live instance with the certificate's CN (deleted, or another shard's), and `permission_denied`
 * when the certificate's tenant is not the instance's.
 */
export function callerInstance(db: Db, caller: ClientIdentity): InstanceRef {
  const row = lookup(db).get(caller.clientId) as
    | { id: string; tenant: string; group_key: string; deleted_at: number | null }
    | undefined;
  if (!row || row.deleted_at !== null) {
    throw new NstanceError("not_found", `instance ${caller.clientId} is not known to this shard`);
  }
  if (row.tenant !== caller.tenant) {
    throw new NstanceError(
      "permission_denied",
      `instance ${caller.clientId} belongs to another tenant than the client certificate`,
    );
  }
  return { id: row.id, tenant: row.tenant, groupKey: row.group_key };
}

/** The lookup runs once per stream or call; its statement is prepared once per database. */
const statements = new WeakMap<Db, BetterSqlite3.Statement<unknown[]>>();

function lookup(db: Db): BetterSqlite3.Statement<unknown[]> {
  let st = statements.get(db);
  if (!st) {
    st = db.prepare("SELECT id, tenant, group_key, deleted_at FROM instances WHERE id = ?");
    statements.set(db, st);
  }
  return st;
}

/** Throws NstanceError `permission_denied` unless `instanceId` is the caller's own CN. */
export function requireOwnInstance(caller: ClientIdentity, instanceId: string): void {
  if (instanceId !== caller.clientId) {
    throw new NstanceError(
      "permission_denied",
      `instance_id ${JSON.stringify(instanceId.slice(0, 64))} does not match the client certificate (${caller.clientId})`,
    );
  }
}
