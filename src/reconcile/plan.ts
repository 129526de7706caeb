// SPDX-License-Identifier: Apache-2.0
/**
 * The reconciler's decision function: from groups, instance records and a clock to the actions
 * that move every group toward its size (seed 001). Pure and deterministic, so tables and
 * properties test it; the executor carries the actions out, and the reconciler plans again after
 * every event and at `nextWakeAt`. It assumes the previous pass's actions are reflected in its
 * input (a create's record, with the replaced instance's `replacedBy`, exists before the next pass).
 *
 * Per group, in order: drains that completed (acked, timed out, VM gone) are deleted; then seed 001's
 * priority order: 1 scale down, 2 forced expiry, 3 unhealthy replacement (and spot notices), 4
 * opportunistic expiry and infrastructure drift, 5 scale up. Rules in plan-group.ts.
 */
import { NstanceError } from "../shared/errors.js";
import { DEFAULT_MASS_FAILURE_GUARD } from "./mass-failure-guard.js";
import type { CreateIntent, GroupPlan } from "./plan-group.js";
import { compareAge, isAlive, planGroup } from "./plan-group.js";
import type { Action, PlanGroup, PlanInstance, PlanResult, PlanSettings } from "./plan-types.js";
import { groupRef } from "./plan-types.js";

/**
 * Plans one reconciliation pass over every group of the shard. Groups that own managed instances
 * but are missing from `groups` are scaled to 0 through drain. On-demand instances are ignored.
 */
export function plan(
  groups: readonly PlanGroup[],
  instances: readonly PlanInstance[],
  settings: PlanSettings,
): PlanResult {
  const now = settings.now;
  const configured = new Map<string, PlanGroup>();
  for (const g of groups) {
    const ref = groupRef(g.tenant, g.key);
    if (configured.has(ref)) throw new NstanceError("invalid_argument", `duplicate group ${ref}`);
    configured.set(ref, g);
  }
  const byId = new Map<string, PlanInstance>();
  const members = new Map<string, PlanInstance[]>();
  let pendingCount = 0;
  for (const i of instances) {
    if (byId.has(i.id)) throw new NstanceError("invalid_argument", `duplicate instance ${i.id}`);
    byId.set(i.id, i);
    if (i.onDemand || !isAlive(i)) continue;
    if (i.status === "pending") pendingCount += 1;
    const ref = groupRef(i.tenant, i.group);
    const list = members.get(ref);
    if (list) list.push(i);
    else members.set(ref, [i]);
  }

  const refs = [...new Set([...configured.keys(), ...members.keys()])].sort(compareText);
  let nextWakeAt: number | undefined;
  const wakeAt = (at: number): void => {
    if (at > now && (nextWakeAt === undefined || at < nextWakeAt)) nextWakeAt = at;
  };
  const guard = settings.guard ?? DEFAULT_MASS_FAILURE_GUARD;
  const plans: GroupPlan[] = [];
  for (const ref of refs) {
    const list = (members.get(ref) ?? []).sort(compareAge);
    const config = configured.get(ref);
    const first = list[0];
    const group: PlanGroup = config ?? {
      tenant: first!.tenant,
      key: first!.group,
      size: 0,
      infraHash: "",
      drainTimeoutMs: settings.defaultDrainTimeoutMs,
    };
    plans.push(
      planGroup({
        group,
        deleted: config === undefined,
        members: list,
        byId,
        settings,
        guard,
        wakeAt,
      }),
    );
  }

  grantCreates(plans, settings.maxConcurrentCreates, pendingCount);

  const actions: Action[] = [];
  for (const p of plans) {
    for (const e of p.entries) {
      if ("action" in e) actions.push(e.action);
      else if (e.intent.granted) actions.push(e.intent.action);
    }
    actions.push(...p.defers.values());
  }
  return nextWakeAt === undefined ? { actions } : { actions, nextWakeAt };
}

/**
 * Applies the shard-wide create budget (`maxConcurrentCreates` minus instances still pending):
 * by priority class first, then round-robin over groups so one large scale-up cannot starve the
 * rest. Creates left out become `max-concurrent-creates` defer notes.
 */
function grantCreates(plans: GroupPlan[], max: number | undefined, pendingCount: number): void {
  let budget = max === undefined ? Infinity : Math.max(0, max - pendingCount);
  for (const priority of [2, 3, 4, 5] as const) {
    const queues = plans.map((p) => ({
      plan: p,
      intents: p.entries.flatMap((e) =>
        "intent" in e && e.intent.priority === priority ? [e.intent] : [],
      ),
    }));
    const rounds = Math.max(0, ...queues.map((q) => q.intents.length));
    for (let k = 0; k < rounds; k++) {
      for (const q of queues) {
        const intent = q.intents[k];
        if (!intent) continue;
        if (budget > 0) {
          intent.granted = true;
          budget -= 1;
        } else {
          noteDropped(q.plan, intent);
        }
      }
    }
  }
}

function noteDropped(p: GroupPlan, intent: CreateIntent): void {
  const reason = intent.action.reason;
  const k = `${reason}/max-concurrent-creates`;
  const d = p.defers.get(k);
  if (d) d.count += 1;
  else {
    p.defers.set(k, {
      kind: "defer",
      tenant: p.tenant,
      group: p.key,
      reason,
      blockedBy: "max-concurrent-creates",
      count: 1,
    });
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
