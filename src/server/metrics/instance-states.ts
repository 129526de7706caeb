// SPDX-License-Identifier: Apache-2.0
/**
 * The lifecycle state an instance is counted under in metrics and the cluster view, and the
 * per-group counts. Pure functions over the rows a planning pass reads.
 */
import type { LiveInstance } from "../../db/instance-lifecycle.js";

/** Instance states, in lifecycle order. */
export const INSTANCE_STATES = ["pending", "running", "unhealthy", "draining", "deleting"] as const;
/** One of {@link INSTANCE_STATES}. */
export type InstanceState = (typeof INSTANCE_STATES)[number];

/**
 * `deleting` once the provider delete started; `draining` once a drain started; `unhealthy` after
 * a failed health verdict; `running` once the agent registered; `pending` before that.
 */
export function instanceState(i: LiveInstance): InstanceState {
  if (i.providerStatus === "deleting" || i.providerStatus === "deleted") return "deleting";
  if (i.drainStartedAt !== undefined) return "draining";
  if (i.unhealthyAt !== undefined) return "unhealthy";
  if (i.registeredAt === undefined) return "pending";
  return "running";
}

/** The instances of one group, by state. */
export interface GroupInstanceCounts {
  tenant: string;
  group: string;
  /** Every live instance of the group (managed and on-demand). */
  total: number;
  states: Record<InstanceState, number>;
}

function emptyStates(): Record<InstanceState, number> {
  return Object.fromEntries(INSTANCE_STATES.map((s) => [s, 0])) as Record<InstanceState, number>;
}

/**
 * Counts `instances` per group and state. Every group in `groups` appears (with zeros when it has
 * no instance), so a gauge falls to 0 instead of vanishing; groups only instances name follow.
 */
export function countInstances(
  instances: readonly LiveInstance[],
  groups: ReadonlyArray<{ tenant: string; key: string }> = [],
): GroupInstanceCounts[] {
  const byRef = new Map<string, GroupInstanceCounts>();
  const entry = (tenant: string, group: string): GroupInstanceCounts => {
    const ref = `${tenant}/${group}`;
    let e = byRef.get(ref);
    if (!e) {
      e = { tenant, group, total: 0, states: emptyStates() };
      byRef.set(ref, e);
    }
    return e;
  };
  for (const g of groups) entry(g.tenant, g.key);
  for (const i of instances) {
    const e = entry(i.tenant, i.groupKey);
    e.total++;
    e.states[instanceState(i)]++;
  }
  return [...byRef.values()];
}
