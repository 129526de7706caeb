// SPDX-License-Identifier: Apache-2.0
/**
 * Decisions for one group in one planning pass (the group half of {@link plan}, plan.ts). Pure: the
 * same inputs give the same entries in the same order.
 *
 * Vocabulary used below, over the group's alive (pending/running) managed instances:
 * - doomed: has a reason to leave: unhealthy, spot notice, forced/eligible age, infrastructure drift.
 * - replaced: doomed and its `replacedBy` names an alive, non-draining instance of the group.
 * - counted: not draining and not replaced. The group wants `size` counted instances.
 * - cap count: every alive instance except those draining for scale-down or group deletion (surplus
 *   by definition). A create never takes it above `size` (scale-up) or `size + 1` (replacement),
 *   counting an instance deleted in the same pass (its delete waits for the create).
 * - failed replacement: the unhealthy replacement of a doomed instance that is still here. It leaves
 *   and the doomed instance is replaced again, instead of a third instance being created.
 * - ready: running, registered, not unhealthy, not draining. A healthy instance is drained or
 *   deleted for rotation only once its replacement is ready.
 * - rotation: leaving for drift or eligible expiry. One starts only in a settled group (at size,
 *   nothing draining, replacing or unhealthy), and at most one rotation of a group drains at once.
 */
import { isMassFailure, massFailureLimit } from "./mass-failure-guard.js";
import type {
  Action,
  CreateAction,
  CreateReason,
  DeferAction,
  DeferCause,
  DeleteReason,
  DrainReason,
  MassFailureGuard,
  PlanGroup,
  PlanInstance,
  PlanSettings,
  ReplaceReason,
} from "./plan-types.js";
import { groupRef } from "./plan-types.js";

/** Priority class of a create, lower first (seed 001: 2 forced expiry, 3 unhealthy, 4 opportunistic expiry, 5 scale up). */
export type CreatePriority = 2 | 3 | 4 | 5;

/** A create the group wants; the shard-wide create budget decides whether it is granted. */
export interface CreateIntent {
  action: CreateAction;
  priority: CreatePriority;
  granted: boolean;
}

/** One step of a group's plan, in execution order. */
export type GroupPlanEntry = { action: Action } | { intent: CreateIntent };

/** A group's share of a planning pass, before the shard-wide create budget is applied. */
export interface GroupPlan {
  tenant: string;
  key: string;
  entries: GroupPlanEntry[];
  /** Defer notes, one per (reason, cause), appended after the entries. */
  defers: Map<string, DeferAction>;
}

/** Inputs of {@link planGroup}. */
export interface PlanGroupInput {
  group: PlanGroup;
  /** True when the group is no longer configured: scale to 0 through drain, reason `group-deleted`. */
  deleted: boolean;
  /** The group's alive (pending/running) managed instances, sorted by createdAt then id. */
  members: readonly PlanInstance[];
  /** Every instance of the pass by id, to resolve `replacedBy`. */
  byId: ReadonlyMap<string, PlanInstance>;
  settings: PlanSettings;
  guard: MassFailureGuard;
  /** Called with every future time at which this group's plan changes by itself. */
  wakeAt: (at: number) => void;
}

const SCALE_DOWN_REASONS: ReadonlySet<DrainReason> = new Set(["scale-down", "group-deleted"]);
const ROTATION_REASONS: ReadonlySet<DrainReason> = new Set(["config-drift", "eligible-expiry"]);

/** True for drain reasons that mean "surplus": such instances are excluded from the size cap. */
export function isScaleDownReason(reason: DrainReason): boolean {
  return SCALE_DOWN_REASONS.has(reason);
}

/** True for opportunistic rotations (drift, eligible expiry), which drain one at a time per group. */
export function isRotationReason(reason: DrainReason): boolean {
  return ROTATION_REASONS.has(reason);
}

/** True for the statuses that count as an existing instance. */
export function isAlive(instance: PlanInstance): boolean {
  return instance.status === "pending" || instance.status === "running";
}

/** True when `instance` can take over from the one it replaces. */
export function isReady(instance: PlanInstance): boolean {
  return (
    instance.status === "running" &&
    instance.registeredAt !== undefined &&
    instance.unhealthy === undefined &&
    instance.drain === undefined
  );
}

/** Orders instances oldest first, ties broken by id. */
export function compareAge(a: PlanInstance, b: PlanInstance): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Plans one group: drain completion, then seed 001's priority order. */
export function planGroup(input: PlanGroupInput): GroupPlan {
  const { group, deleted, members, byId, settings, guard, wakeAt } = input;
  const now = settings.now;
  const size = deleted ? 0 : Math.max(0, group.size);
  const out: GroupPlan = { tenant: group.tenant, key: group.key, entries: [], defers: new Map() };
  /** Ids deleted or drained by this pass. */
  const leaving = new Set<string>();
  const forcedAgeMs = positive(settings.forcedAgeMs);
  const eligibleAgeMs = positive(settings.eligibleAgeMs);

  const emit = (action: Action): void => {
    out.entries.push({ action });
  };
  const remove = (
    x: PlanInstance,
    reason: DeleteReason,
    skipDrain: boolean,
    drainReason?: DrainReason,
  ): void => {
    leaving.add(x.id);
    emit({
      kind: "delete",
      instanceId: x.id,
      tenant: x.tenant,
      group: x.group,
      reason,
      skipDrain,
      ...(drainReason === undefined ? {} : { drainReason }),
    });
  };
  const drainDeadline = (x: PlanInstance): number =>
    Math.max(now, Math.min(now + group.drainTimeoutMs, x.spotNotice?.deadlineAt ?? Infinity));
  const drain = (x: PlanInstance, reason: DrainReason): void => {
    leaving.add(x.id);
    const deadlineAt = drainDeadline(x);
    wakeAt(deadlineAt);
    emit({ kind: "drain", instanceId: x.id, tenant: x.tenant, group: x.group, reason, deadlineAt });
  };
  /** True when `x` leaving is coordinated through drain; false when it is simply deleted. */
  const needsDrain = (x: PlanInstance): boolean =>
    !x.unhealthy?.skipDrain && group.drainTimeoutMs > 0 && x.registeredAt !== undefined;
  /** Drains when there is something to coordinate, else deletes. Returns true when it drained. */
  const drainOrDelete = (x: PlanInstance, reason: DrainReason): boolean => {
    if (!needsDrain(x)) {
      remove(x, reason, true);
      return false;
    }
    drain(x, reason);
    return true;
  };
  const defer = (reason: CreateReason, blockedBy: DeferCause, count = 1, retryAt?: number) => {
    const k = `${reason}/${blockedBy}`;
    const d = out.defers.get(k);
    if (d) {
      d.count += count;
      return;
    }
    out.defers.set(k, {
      kind: "defer",
      tenant: group.tenant,
      group: group.key,
      reason,
      blockedBy,
      count,
      ...(retryAt === undefined ? {} : { retryAt }),
    });
  };

  const doomReason = (x: PlanInstance): ReplaceReason | undefined => {
    if (x.unhealthy) return "unhealthy";
    if (x.spotNotice) return "spot-terminating";
    const ageMs = now - x.createdAt;
    if (forcedAgeMs !== undefined && ageMs >= forcedAgeMs) return "forced-expiry";
    if (!deleted && x.infraHash !== group.infraHash) return "config-drift";
    if (eligibleAgeMs !== undefined && ageMs >= eligibleAgeMs) return "eligible-expiry";
    return undefined;
  };
  const liveReplacement = (x: PlanInstance): PlanInstance | undefined => {
    if (x.replacedBy === undefined) return undefined;
    const r = byId.get(x.replacedBy);
    if (!r || !isAlive(r) || r.onDemand || r.drain || leaving.has(r.id)) return undefined;
    return r.tenant === x.tenant && r.group === x.group ? r : undefined;
  };

  // Drain completion: acknowledged, timed out, or the VM vanished mid-drain.
  const active: PlanInstance[] = [];
  const draining: PlanInstance[] = [];
  for (const m of members) {
    const d = m.drain;
    if (!d) {
      active.push(m);
    } else if (d.ackedAt !== undefined) {
      remove(m, "drain-acked", false, d.reason);
    } else if (now >= d.deadlineAt) {
      remove(m, "drain-timeout", false, d.reason);
    } else if (m.unhealthy?.skipDrain) {
      remove(m, "unhealthy", true, d.reason);
    } else {
      draining.push(m);
      wakeAt(d.deadlineAt);
    }
  }

  // A replacement that failed before taking over (unhealthy while what it replaces is still here)
  // leaves instead of getting a replacement of its own: a group holds one surge instance at most,
  // and what it was to replace is replaced again once it is gone (size + 1 at every moment).
  let failedDrains = 0;
  if (!deleted) {
    const unhealthyNow = active.reduce((n, m) => (m.unhealthy ? n + 1 : n), 0);
    // Under the mass-failure guard nothing is replaced and the failed replacement still counts
    // toward the guard (a bad image stops the churn).
    const guardHolds = isMassFailure(guard, size, unhealthyNow);
    for (const x of guardHolds ? [] : active) {
      if (doomReason(x) === undefined) continue;
      const r = liveReplacement(x);
      if (!r?.unhealthy || leaving.has(r.id) || !active.includes(r)) continue;
      if (drainOrDelete(r, "unhealthy")) failedDrains += 1;
    }
  }
  const staying = active.filter((x) => !leaving.has(x.id));

  const replaced: PlanInstance[] = [];
  const counted: PlanInstance[] = [];
  for (const x of staying) {
    if (doomReason(x) !== undefined && liveReplacement(x) !== undefined) replaced.push(x);
    else counted.push(x);
  }
  const replacementBacklog = draining.filter((d) => !isScaleDownReason(d.drain!.reason));
  /** Opportunistic rotations (drift, eligible expiry) draining; at most one per group at a time. */
  let rotationDrains = draining.filter((d) => isRotationReason(d.drain!.reason)).length;
  /** Instances the size cap sees; kept up to date as this pass plans. */
  let capCount = staying.length + replacementBacklog.length + failedDrains;
  /** Instances that will count toward `size` once this pass is carried out. */
  let countedN = counted.length;
  /** Missing instances already noted as a deferred replacement, so scale-up does not note them again. */
  let heldBack = 0;

  const intent = (reason: CreateReason, priority: CreatePriority, replaces?: string): void => {
    capCount += 1;
    out.entries.push({
      intent: {
        action: {
          kind: "create",
          tenant: group.tenant,
          group: group.key,
          reason,
          ...(replaces === undefined ? {} : { replaces }),
        },
        priority,
        granted: false,
      },
    });
  };
  /**
   * Plans the replacement of `x` if subnet and cap allow. `x` counts until its replacement is
   * created even when it is deleted in the same pass (the executor deletes it only then), so a
   * replacement is created only while no other surge instance of the group exists.
   */
  const tryReplace = (x: PlanInstance, reason: CreateReason, priority: CreatePriority): boolean => {
    if (group.subnetCapacity === false) {
      defer(reason, "subnet-capacity");
      return false;
    }
    if (capCount + 1 > size + 1) {
      defer(reason, "size-cap");
      return false;
    }
    intent(reason, priority, x.id);
    return true;
  };

  // 1. Scale down: unhealthy first, then spot-noticed, replaced, drifted, then oldest; all at once.
  const victims =
    size === 0
      ? staying
      : pickVictims(counted, counted.length - size, group, (x) => liveReplacement(x) !== undefined);
  const scaleDownReason: DrainReason = deleted ? "group-deleted" : "scale-down";
  for (const v of victims) {
    drainOrDelete(v, scaleDownReason);
    capCount -= 1;
  }
  const remaining = counted.filter((x) => !leaving.has(x.id));
  countedN = remaining.length;

  // In-flight replacements: once the replacement is ready, the replaced instance leaves. Its reason
  // is re-read now: one replaced as unhealthy that recovered but has drifted leaves as a rotation,
  // so it waits while another rotation drains (one at a time), keeping its replacement (size + 1).
  for (const x of replaced) {
    if (leaving.has(x.id)) continue;
    const r = liveReplacement(x);
    if (!r) continue; // its replacement became a scale-down victim: counted again next pass
    const reason = doomReason(x)!;
    if (x.unhealthy?.skipDrain) {
      remove(x, "unhealthy", true);
      capCount -= 1;
    } else if (isReady(r)) {
      const rotation = isRotationReason(reason) && needsDrain(x);
      if (rotation && rotationDrains > 0) continue;
      if (rotation) rotationDrains += 1;
      if (!drainOrDelete(x, reason)) capCount -= 1;
    } else if (x.spotNotice) {
      if (leaveForSpot(x) === "deleted") capCount -= 1;
    }
  }

  // 2. Forced expiry: one new over-age replacement per pass, even while others drain.
  if (!deleted && forcedAgeMs !== undefined) {
    const x = remaining.find((i) => doomReason(i) === "forced-expiry");
    if (x) tryReplace(x, "forced-expiry", 2);
  }

  // 3. Unhealthy replacement (with the mass-failure guard) and spot notices.
  // Unhealthy instances still in the group: those draining or leaving are already handled.
  const unhealthyCount = members.reduce(
    (n, m) => (m.unhealthy && !m.drain && !leaving.has(m.id) ? n + 1 : n),
    0,
  );
  const guardTripped = !deleted && isMassFailure(guard, size, unhealthyCount);
  if (guardTripped) {
    emit({
      kind: "alert",
      tenant: group.tenant,
      group: group.key,
      reason: "mass-failure",
      unhealthyCount,
      limit: massFailureLimit(guard, size),
    });
  }
  if (!deleted) {
    for (const x of remaining) {
      if (leaving.has(x.id) || doomReason(x) !== "unhealthy") continue;
      if (guardTripped) {
        defer("unhealthy", "mass-failure");
      } else if (x.unhealthy!.skipDrain) {
        // Nothing runs there: the replacement is issued first and the record goes in the same pass
        // (its delete waits for the create, so the cap counts it until then).
        if (!tryReplace(x, "unhealthy", 3)) {
          countedN -= 1;
          heldBack += 1;
        }
        remove(x, "unhealthy", true);
        capCount -= 1;
      } else {
        tryReplace(x, "unhealthy", 3);
      }
    }
    for (const x of remaining) {
      if (leaving.has(x.id) || doomReason(x) !== "spot-terminating") continue;
      const replacing = tryReplace(x, "spot-terminating", 3);
      // The VM goes at the notice's deadline whatever we do: tell the operator now.
      const left = leaveForSpot(x);
      if (left === "deleted") capCount -= 1;
      if (left !== "stayed" && !replacing) {
        countedN -= 1;
        heldBack += 1;
      }
    }
    // Drains whose replacement vanished (or was never possible): backfill while below size.
    for (const d of replacementBacklog) {
      if (countedN + heldBack >= size) break;
      if (liveReplacement(d)) continue;
      // Not a scale-down drain, so its reason is a replace reason.
      const reason = d.drain!.reason as ReplaceReason;
      if (reason === "unhealthy" && guardTripped) {
        defer("unhealthy", "mass-failure");
        heldBack += 1;
      } else if (tryReplace(d, reason, 3)) {
        countedN += 1;
      } else {
        heldBack += 1;
      }
    }
  }

  // 4. Opportunistic expiry and drift: one at a time, only in a settled group. A group short of its
  // size is not settled: the rotation would take the cap slot scale-up needs (scale-up stays below
  // `size`), so scale-up fills the group first instead of waiting out every rotation.
  const busy =
    countedN + heldBack < size ||
    draining.length > 0 ||
    out.entries.some((e) => "intent" in e || e.action.kind === "drain") ||
    replaced.some((x) => !leaving.has(x.id)) ||
    members.some((m) => !leaving.has(m.id) && (m.unhealthy || m.spotNotice));
  if (!deleted && !busy) {
    for (const x of remaining) {
      const reason = doomReason(x);
      if (reason !== undefined && ROTATION_REASONS.has(reason)) {
        tryReplace(x, reason, 4);
        break;
      }
    }
  }

  // 5. Scale up: rate-limited, never above size.
  const deficit = size - countedN - heldBack;
  if (!deleted && deficit > 0) {
    if (group.subnetCapacity === false) {
      defer("scale-up", "subnet-capacity", deficit);
    } else {
      const rateMs = positive(group.createRateLimitMs);
      let byRate = deficit;
      let retryAt: number | undefined;
      if (rateMs !== undefined) {
        const last = settings.lastCreateAt?.get(groupRef(group.tenant, group.key));
        if (last !== undefined && now < last + rateMs) {
          byRate = 0;
          retryAt = last + rateMs;
        } else {
          byRate = 1;
          retryAt = now + rateMs;
        }
      }
      const byCap = Math.max(0, size - capCount);
      const n = Math.min(deficit, byRate, byCap);
      for (let i = 0; i < n; i++) intent("scale-up", 5);
      const left = deficit - n;
      if (left > 0) {
        if (byRate < Math.min(deficit, byCap)) defer("scale-up", "rate-limit", left, retryAt);
        else defer("scale-up", "size-cap", left);
        if (retryAt !== undefined) wakeAt(retryAt);
      }
    }
  }

  // Expiry timers for instances that are not due yet.
  if (!deleted) {
    for (const x of remaining) {
      if (leaving.has(x.id)) continue;
      if (forcedAgeMs !== undefined) wakeAt(x.createdAt + forcedAgeMs);
      if (eligibleAgeMs !== undefined) wakeAt(x.createdAt + eligibleAgeMs);
    }
  }
  return out;

  /**
   * A spot-noticed instance leaves now through drain when there is a drain to coordinate; without
   * drain it keeps serving until its replacement is ready or the notice's deadline passes.
   */
  function leaveForSpot(x: PlanInstance): "drained" | "deleted" | "stayed" {
    if (group.drainTimeoutMs > 0 && x.registeredAt !== undefined && !x.unhealthy?.skipDrain) {
      drain(x, "spot-terminating");
      return "drained";
    }
    const deadlineAt = x.spotNotice?.deadlineAt;
    if (x.registeredAt === undefined || deadlineAt === undefined || now >= deadlineAt) {
      remove(x, "spot-terminating", true);
      return "deleted";
    }
    wakeAt(deadlineAt);
    return "stayed";
  }
}

/** The `count` instances scale-down removes first: unhealthy (gone first), spot-noticed, replaced, drifted, then oldest. */
function pickVictims(
  counted: readonly PlanInstance[],
  count: number,
  group: PlanGroup,
  hasReplacement: (x: PlanInstance) => boolean,
): PlanInstance[] {
  if (count <= 0) return [];
  // An instance whose replacement is alive (its verdict cleared, or not known to a new leader)
  // goes before the others: that finishes the replacement instead of removing a bystander.
  const rank = (x: PlanInstance): number =>
    x.unhealthy?.skipDrain
      ? 0
      : x.unhealthy
        ? 1
        : x.spotNotice
          ? 2
          : hasReplacement(x)
            ? 3
            : x.infraHash !== group.infraHash
              ? 4
              : 5;
  // `counted` is already oldest first; a stable sort by rank keeps that order within a rank.
  return counted
    .map((x) => ({ x, r: rank(x) }))
    .sort((a, b) => a.r - b.r)
    .slice(0, count)
    .map((e) => e.x);
}

function positive(ms: number | undefined): number | undefined {
  return ms !== undefined && ms > 0 ? ms : undefined;
}
