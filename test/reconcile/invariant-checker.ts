// SPDX-License-Identifier: Apache-2.0
/**
 * Invariants of the reconciler (issue 6), checked after every executed action:
 *
 * 1. Managed instances per group never exceed size + 1. Instances leaving because the group
 *    shrank (draining for `scale-down`/`group-deleted`, or being deleted for those reasons) are
 *    surplus by definition and not counted (the planner's report).
 * 2. No two rotations (`config-drift`, `eligible-expiry`) of one group drain at once.
 * 3. Every deleted instance that has a replacement had it created first.
 *
 * Violations are collected (an observer must not throw into the reconciler); tests assert that
 * the list is empty.
 */
import type { EffectiveGroup } from "../../src/config/server-config.js";
import type { Db } from "../../src/db/database.js";
import { getLiveInstance, listLiveInstances } from "../../src/db/instance-lifecycle.js";
import type { ExecutedAction, Reconciler } from "../../src/reconcile/reconciler.js";

const SURPLUS = new Set(["scale-down", "group-deleted"]);
const ROTATIONS = new Set(["config-drift", "eligible-expiry"]);

/** Options for {@link InvariantChecker}. */
export interface InvariantCheckerOptions {
  db: Db;
  groups: () => readonly EffectiveGroup[];
  reconciler: () => Reconciler | undefined;
}

/** Collects invariant violations; see the file comment. */
export class InvariantChecker {
  readonly violations: string[] = [];
  /** Actions seen, in order. */
  readonly actions: ExecutedAction[] = [];
  /** Largest counted managed instances seen per group (`tenant/key`). */
  readonly maxCounted = new Map<string, number>();
  /** Largest number of alive managed rows seen per group, surplus included. */
  readonly maxAlive = new Map<string, number>();
  readonly #created = new Set<string>();
  readonly #failedCreates = new Set<string>();
  readonly #o: InvariantCheckerOptions;

  constructor(opts: InvariantCheckerOptions) {
    this.#o = opts;
  }

  /** The reconciler's `onAction` hook. */
  readonly onAction = (e: ExecutedAction): void => {
    this.actions.push(e);
    const a = e.action;
    if (a.kind === "create") {
      if (e.outcome === "done") this.#created.add(e.instanceId);
      else this.#failedCreates.add(e.instanceId);
    }
    if (a.kind === "delete" && e.outcome === "done") {
      const row = getLiveInstance(this.#o.db, e.instanceId);
      const r = row?.replacedBy;
      if (r !== undefined && !this.#created.has(r) && !this.#failedCreates.has(r)) {
        this.violations.push(`${e.instanceId} deleted before its replacement ${r} was created`);
      }
    }
    this.check(`after ${a.kind} ${e.instanceId} (${e.outcome})`);
  };

  /** Checks invariants 1 and 2 against the database now. */
  check(when: string): void {
    const sizes = new Map(this.#o.groups().map((g) => [`${g.tenant}/${g.key}`, g.size]));
    const leavingAsSurplus = new Set(
      (this.#o.reconciler()?.inFlight().deletes ?? [])
        .filter((d) => SURPLUS.has(d.reason) || isDrainCompletionOfSurplus(this.#o.db, d))
        .map((d) => d.instanceId),
    );
    const counted = new Map<string, number>();
    const alive = new Map<string, number>();
    const rotations = new Map<string, number>();
    for (const row of listLiveInstances(this.#o.db)) {
      if (row.onDemand || row.providerStatus === "deleting" || row.providerStatus === "deleted")
        continue;
      const ref = `${row.tenant}/${row.groupKey}`;
      alive.set(ref, (alive.get(ref) ?? 0) + 1);
      const surplus =
        (row.drainStartedAt !== undefined && SURPLUS.has(row.drainReason ?? "")) ||
        leavingAsSurplus.has(row.id);
      if (!surplus) counted.set(ref, (counted.get(ref) ?? 0) + 1);
      if (row.drainStartedAt !== undefined && ROTATIONS.has(row.drainReason ?? "")) {
        rotations.set(ref, (rotations.get(ref) ?? 0) + 1);
      }
    }
    for (const [ref, n] of counted) {
      const size = sizes.get(ref) ?? 0;
      this.maxCounted.set(ref, Math.max(this.maxCounted.get(ref) ?? 0, n));
      if (n > size + 1)
        this.violations.push(`${when}: ${ref} has ${n} managed instances, size ${size}`);
    }
    for (const [ref, n] of alive) this.maxAlive.set(ref, Math.max(this.maxAlive.get(ref) ?? 0, n));
    for (const [ref, n] of rotations) {
      if (n > 1) this.violations.push(`${when}: ${ref} has ${n} rotations draining at once`);
    }
  }
}

/** A delete completing a drain started for scale-down or group deletion. */
function isDrainCompletionOfSurplus(db: Db, d: { instanceId: string; reason: string }): boolean {
  if (d.reason !== "drain-acked" && d.reason !== "drain-timeout") return false;
  return SURPLUS.has(getLiveInstance(db, d.instanceId)?.drainReason ?? "");
}
