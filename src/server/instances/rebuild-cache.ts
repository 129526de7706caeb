// SPDX-License-Identifier: Apache-2.0
/**
 * Cache rebuild on leadership (reference §4.3 step 3): SQLite is seeded from every instance record
 * in storage, then checked against the provider's list, so a new leader (or a server whose
 * `--cachedir` was deleted) knows every instance the shard owns and creates no duplicates:
 *
 * - a record without a row becomes a row (deleted records as soft-deleted rows, kept for GC);
 * - a live row whose record says `deleting` (an earlier term on another server deleted it while
 *   this server's cache still held it) is soft-deleted at the record's time: a stale row must not
 *   count, nor get a later deletion time, once this server leads again;
 * - a VM fills in a row's missing provider ID and its current status;
 * - a live row whose VM the provider no longer has (confirmed by a status call) is marked deleted;
 * - a VM whose record says `deleting` is deleted again (term-fenced); a VM with no record at all is
 *   reported and left alone (it may not be ours to delete).
 *
 * Rows that exist are kept as they are (they hold health and drain state storage does not).
 */
import type { Db } from "../../db/database.js";
import { recordDecision } from "../../db/decisions-table.js";
import {
  fillProviderId,
  getLiveInstance,
  insertRestoredInstance,
  listLiveInstances,
  markInstanceDeleted,
  recordProviderStatus,
  setReplacedBy,
} from "../../db/instance-lifecycle.js";
import { getInstance } from "../../db/instances-table.js";
import type { TermFence } from "../../election/term-fence.js";
import { type InstanceStatus, isTerminalStatus, type Provider } from "../../providers/provider.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { instanceRecordKey } from "../api/registration/instance-record.js";
import { updateJsonObject } from "../api/update-json-object.js";
import { readInstanceRecord, type StoredInstanceRecord } from "./stored-instance-record.js";

/** Records read from storage at the same time. */
export const DEFAULT_REBUILD_READ_CONCURRENCY = 16;

/** Options for {@link rebuildCache}. */
export interface RebuildCacheOptions {
  db: Db;
  /** The bucket (unscoped). */
  storage: ObjectStorage;
  prefix: string;
  provider: Provider;
  clusterId: string;
  shard: string;
  logger: Logger;
  /** With `term`: fences record writes and deletes of VMs whose record says `deleting`. */
  fence?: TermFence;
  term?: number;
  now?: () => number;
  /** See {@link DEFAULT_REBUILD_READ_CONCURRENCY}. */
  readConcurrency?: number;
}

/** What a rebuild found and did. */
export interface RebuildCacheResult {
  records: number;
  /** Records that could not be read or parsed (left in storage, reported). */
  unreadable: number;
  /** Rows created from records. */
  rowsRestored: number;
  providerInstances: number;
  /** Rows whose provider ID came from the provider's list. */
  providerIdsFilled: number;
  /** Live rows whose VM is gone, now marked deleted. */
  markedDeleted: number;
  /** Live rows whose record says another term deleted the instance, now marked deleted. */
  deletedElsewhere: number;
  /** VMs deleted again because their record says `deleting`. */
  deletedVmsRemoved: number;
  /** Instance IDs (or provider IDs) of VMs no record knows. */
  unknownVms: string[];
  durationMs: number;
}

/** Rebuilds the instance cache; see the file comment. Throws when storage or the provider list fails. */
export async function rebuildCache(
  opts: RebuildCacheOptions,
  signal?: AbortSignal,
): Promise<RebuildCacheResult> {
  const started = performance.now();
  const now = opts.now ?? Date.now;
  const { db, provider, logger } = opts;
  const result: RebuildCacheResult = {
    records: 0,
    unreadable: 0,
    rowsRestored: 0,
    providerInstances: 0,
    providerIdsFilled: 0,
    markedDeleted: 0,
    deletedElsewhere: 0,
    deletedVmsRemoved: 0,
    unknownVms: [],
    durationMs: 0,
  };
  const storage =
    opts.fence && opts.term !== undefined
      ? opts.fence.guardStorage(opts.storage, opts.term)
      : opts.storage;

  // 1. Every record in storage.
  const records = await readRecords(opts, result, signal);
  const replacedBy = new Map<string, string>();
  for (const r of records) if (r.replaces) replacedBy.set(r.replaces, r.instanceId);
  db.transaction(() => {
    for (const r of records) {
      if (restore(db, r, replacedBy.get(r.instanceId))) {
        result.rowsRestored++;
        if (r.status === "deleting") recordDeletedElsewhere(db, r);
      } else if (r.status === "deleting" && markDeletedElsewhere(db, r)) {
        result.deletedElsewhere++;
      } else if (
        r.providerInstanceId &&
        fillProviderId(db, r.instanceId, r.providerInstanceId, r.lastUpdated)
      ) {
        result.providerIdsFilled++;
      }
    }
    for (const [oldId, newId] of replacedBy) {
      const old = getLiveInstance(db, oldId);
      if (old && old.replacedBy === undefined) setReplacedBy(db, oldId, newId, now());
    }
  })();

  // 2. The provider's view.
  const vms = await provider.listInstances(
    { clusterId: opts.clusterId, shard: opts.shard },
    signal,
  );
  result.providerInstances = vms.length;
  const vmById = new Map<string, InstanceStatus>();
  for (const vm of vms) {
    if (vm.instanceId === "") result.unknownVms.push(vm.providerInstanceId);
    else vmById.set(vm.instanceId, vm);
  }
  const at = now();
  for (const row of listLiveInstances(db)) {
    const vm = vmById.get(row.id);
    vmById.delete(row.id);
    if (vm) {
      if (row.providerId === undefined && fillProviderId(db, row.id, vm.providerInstanceId, at)) {
        result.providerIdsFilled++;
      }
      if (row.providerStatus !== vm.status) recordProviderStatus(db, row.id, vm.status, at);
      continue;
    }
    if (row.providerId === undefined) continue; // a pre-insert: GC reaps it after registration_timeout
    // Lists can lag behind creates: ask about this one VM before calling it gone.
    const status = await provider.getInstanceStatus(row.id, row.providerId, signal);
    if (status && !isTerminalStatus(status.status)) {
      recordProviderStatus(db, row.id, status.status, at);
      continue;
    }
    markInstanceDeleted(db, row.id, at, "deleted");
    recordDecision(db, {
      instanceId: row.id,
      decision: "vanished",
      reason: "provider-gone",
      evidence: {
        provider_instance_id: row.providerId,
        provider_status: status?.status ?? "not_found",
      },
      at,
    });
    result.markedDeleted++;
    try {
      await updateJsonObject(
        storage,
        instanceRecordKey(opts.prefix, row.tenant, row.id),
        (current) => ({
          ...current,
          status: "deleting",
          deleted_at: new Date(at).toISOString(),
          delete_reason: "provider-gone",
          last_updated: new Date(at).toISOString(),
        }),
        { signal },
      );
    } catch (err) {
      logger.warn("Cannot mark a vanished instance's record", {
        instance_id: row.id,
        err: errorMessage(err),
      });
    }
  }

  // 3. VMs no live row claims.
  for (const vm of vmById.values()) {
    const row = getInstance(db, vm.instanceId);
    if (!row) {
      result.unknownVms.push(vm.instanceId);
      continue;
    }
    if (!opts.fence || opts.term === undefined || isTerminalStatus(vm.status)) continue;
    try {
      await provider.deleteInstance(
        vm.instanceId,
        vm.providerInstanceId,
        opts.fence.signalFor(opts.term, signal, `delete leftover VM ${vm.instanceId}`),
      );
      result.deletedVmsRemoved++;
    } catch (err) {
      logger.warn("Cannot delete a VM whose instance was deleted", {
        instance_id: vm.instanceId,
        provider_instance_id: vm.providerInstanceId,
        err: errorMessage(err),
      });
    }
  }
  if (result.unknownVms.length > 0) {
    logger.warn("Provider has VMs of this shard that no instance record knows; left alone", {
      count: result.unknownVms.length,
      instances: result.unknownVms.slice(0, 20),
    });
  }
  result.durationMs = performance.now() - started;
  logger.info("Instance cache rebuilt", {
    records: result.records,
    unreadable: result.unreadable,
    rows_restored: result.rowsRestored,
    provider_instances: result.providerInstances,
    provider_ids_filled: result.providerIdsFilled,
    marked_deleted: result.markedDeleted,
    deleted_elsewhere: result.deletedElsewhere,
    deleted_vms_removed: result.deletedVmsRemoved,
    unknown_vms: result.unknownVms.length,
    duration_ms: Math.round(result.durationMs),
  });
  return result;
}

async function readRecords(
  opts: RebuildCacheOptions,
  result: RebuildCacheResult,
  signal: AbortSignal | undefined,
): Promise<StoredInstanceRecord[]> {
  const infos = await opts.storage.list(`${opts.prefix}instance/`, signal);
  result.records = infos.length;
  const out: StoredInstanceRecord[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < infos.length) {
      const info = infos[next++]!;
      const obj = await opts.storage.get(info.key, signal);
      if (!obj) continue; // deleted since the list
      let rec: StoredInstanceRecord | undefined;
      try {
        rec = readInstanceRecord(JSON.parse(obj.body.toString("utf8")));
      } catch {
        rec = undefined;
      }
      if (rec) out.push(rec);
      else {
        result.unreadable++;
        opts.logger.warn("Unreadable instance record skipped", { key: info.key });
      }
    }
  };
  const n = Math.max(
    1,
    Math.min(opts.readConcurrency ?? DEFAULT_REBUILD_READ_CONCURRENCY, infos.length),
  );
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** Soft-deletes the live row of an instance whose record says `deleting`; false when none is live. */
function markDeletedElsewhere(db: Db, r: StoredInstanceRecord): boolean {
  const at = r.deletedAt ?? r.lastUpdated;
  if (!markInstanceDeleted(db, r.instanceId, at, "deleting")) return false;
  recordDeletedElsewhere(db, r);
  return true;
}

/**
 * Records, from a `deleting` record, the `deleted` decision another term made, so this server's
 * history says why the instance left (a scale-down drain is surplus to the size + 1 count).
 */
function recordDeletedElsewhere(db: Db, r: StoredInstanceRecord): void {
  recordDecision(db, {
    instanceId: r.instanceId,
    decision: "deleted",
    reason: r.deleteReason ?? "deleted",
    evidence: {
      by: "earlier-term",
      provider_instance_id: r.providerInstanceId ?? "",
      ...(r.drainReason ? { drain_reason: r.drainReason } : {}),
    },
    at: r.deletedAt ?? r.lastUpdated,
  });
}

function restore(db: Db, r: StoredInstanceRecord, replacedBy: string | undefined): boolean {
  // A registered agent's nonce is spent: a placeholder keeps the column unique and never matches.
  const nonce =
    r.registeredAt === undefined && r.registrationJwt
      ? r.registrationJwt
      : `restored:${r.instanceId}`;
  const deleting = r.status === "deleting";
  return insertRestoredInstance(db, {
    id: r.instanceId,
    tenant: r.tenant,
    groupKey: r.group,
    onDemand: r.onDemand,
    ...(r.providerInstanceId ? { providerId: r.providerInstanceId } : {}),
    ...(deleting ? { providerStatus: "deleting" } : {}),
    ...(r.subnetId ? { subnetId: r.subnetId } : {}),
    ...(r.instanceType ? { instanceType: r.instanceType } : {}),
    ...(r.hostname ? { hostname: r.hostname } : {}),
    ...(r.privateIpv4 ? { ip4: r.privateIpv4 } : {}),
    ...(r.privateIpv6 ? { ip6: r.privateIpv6 } : {}),
    nonce,
    issuedAt: r.createdAt,
    ...(r.publicKeyPem ? { instancePub: r.publicKeyPem } : {}),
    ...(r.certSerial ? { certSerial: r.certSerial } : {}),
    ...(r.registeredAt === undefined ? {} : { registeredAt: r.registeredAt }),
    infraConfigHash: r.infraConfigHash,
    ...(replacedBy ? { replacedBy } : {}),
    createdAt: r.createdAt,
    updatedAt: r.lastUpdated,
    ...(deleting ? { deletedAt: r.deletedAt ?? r.lastUpdated } : {}),
  });
}
