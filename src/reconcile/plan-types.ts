// SPDX-License-Identifier: Apache-2.0
/**
 * Inputs and outputs of the reconciler's pure decision function {@link plan} (see plan.ts). The
 * reconciler adapts config groups and SQLite rows to these shapes; the executor carries out the
 * actions. Times are Unix milliseconds.
 */

/** A group as the planner sees it: the effective config reduced to what decisions need. */
export interface PlanGroup {
  tenant: string;
  key: string;
  /** Desired number of managed instances (0 while the tenant sleeps). */
  size: number;
  /** The group's current infrastructure hash; an instance with another hash has drifted. */
  infraHash: string;
  /** Effective `drain_timeout` in ms; 0 = delete without drain coordination. */
  drainTimeoutMs: number;
  /** Shard `create_rate_limit` in ms: minimum spacing between scale-up creates. 0/absent = none. */
  createRateLimitMs?: number;
  /** False when no subnet of the group's pool has room: no create is planned. Absent = true. */
  subnetCapacity?: boolean;
}

/** Lifecycle of an instance record; health and drain are separate fields. */
export type PlanInstanceStatus =
  /** Record written, provider create issued or in flight, not yet running. */
  | "pending"
  /** Provider reports the VM running. */
  | "running"
  /** Delete issued; the record no longer counts anywhere. */
  | "deleting"
  /** Gone; kept only for history. */
  | "deleted";

/** Why an instance is drained; recorded on the instance when the drain starts. */
export type DrainReason =
  | "scale-down"
  | "group-deleted"
  | "unhealthy"
  | "config-drift"
  | "eligible-expiry"
  | "forced-expiry"
  | "spot-terminating";

/** A failed health verdict (issue 7 produces it; the planner only reads it). */
export interface UnhealthyVerdict {
  /** Evidence for humans, e.g. `not-found`, `stopped`, `missed-reports`. */
  reason: string;
  /**
   * True when the provider says the VM is gone or not running: nothing runs there, so it is
   * deleted without drain as soon as its replacement create is issued.
   */
  skipDrain: boolean;
}

/** Drain coordination state of an instance that is leaving. */
export interface DrainState {
  startedAt: number;
  /** When the instance is deleted even without an acknowledgement. */
  deadlineAt: number;
  reason: DrainReason;
  /** Set when the operator called AcknowledgeDrained. */
  ackedAt?: number;
}

/** An instance record as the planner sees it. */
export interface PlanInstance {
  id: string;
  tenant: string;
  group: string;
  /** Created through the Operator API: never counted, scaled, replaced or expired here. */
  onDemand: boolean;
  createdAt: number;
  status: PlanInstanceStatus;
  /** The infrastructure hash the instance was provisioned with. */
  infraHash: string;
  providerId?: string;
  /** When the agent registered; an instance that never registered has no workload to drain. */
  registeredAt?: number;
  unhealthy?: UnhealthyVerdict;
  drain?: DrainState;
  /** The provider announced a spot/preemption termination. `deadlineAt` absent = unknown. */
  spotNotice?: { deadlineAt?: number };
  /**
   * Id of the instance created to replace this one (the executor sets it when it carries out a
   * `create` with `replaces`; SQLite `replaced_by`).
   */
  replacedBy?: string;
}

/** Mass-failure guard (issue 7): stop replacing when too much of a group is unhealthy at once. */
export interface MassFailureGuard {
  /** Share of the group's size that may be unhealthy and still be replaced, 0..1. */
  maxUnhealthyFraction: number;
  /** Count that may always be unhealthy and still be replaced, whatever the share. */
  maxUnhealthyCount: number;
}

/** Shard-wide inputs of one planning pass. */
export interface PlanSettings {
  /** The pass's clock; the planner never reads the real one. */
  now: number;
  /** Drain timeout for instances of a group that no longer exists (`default_drain_timeout`). */
  defaultDrainTimeoutMs: number;
  /** `expiry.eligible_age` in ms: opportunistic rotation. 0/absent = disabled. */
  eligibleAgeMs?: number;
  /** `expiry.forced_age` in ms: mandatory rotation. 0/absent = disabled. */
  forcedAgeMs?: number;
  /** Time of each group's last create, keyed by {@link groupRef}; drives `createRateLimitMs`. */
  lastCreateAt?: ReadonlyMap<string, number>;
  /** Shard-wide bound on pending instances plus planned creates. Absent = unbounded. */
  maxConcurrentCreates?: number;
  /** Absent = DEFAULT_MASS_FAILURE_GUARD (mass-failure-guard.ts). */
  guard?: MassFailureGuard;
}

/** Why a create is planned. */
export type CreateReason =
  | "scale-up"
  | "unhealthy"
  | "config-drift"
  | "eligible-expiry"
  | "forced-expiry"
  | "spot-terminating";

/** Why an instance is replaced (create-first); each is also a {@link DrainReason}. */
export type ReplaceReason = Exclude<CreateReason, "scale-up">;

/** Why an instance is deleted. */
export type DeleteReason = DrainReason | "drain-acked" | "drain-timeout";

/** Every reason an action can carry. */
export type ActionReason = CreateReason | DeleteReason | "mass-failure";

/** Create one managed instance in a group. */
export interface CreateAction {
  kind: "create";
  tenant: string;
  group: string;
  reason: CreateReason;
  /** The instance this one replaces; the executor records it as that instance's `replacedBy`. */
  replaces?: string;
}

/** Start drain coordination: send `pending_deletion` and delete at ack or `deadlineAt`. */
export interface DrainAction {
  kind: "drain";
  instanceId: string;
  tenant: string;
  group: string;
  reason: DrainReason;
  deadlineAt: number;
}

/** Delete an instance (load balancers first, then the provider, then the record). */
export interface DeleteAction {
  kind: "delete";
  instanceId: string;
  tenant: string;
  group: string;
  reason: DeleteReason;
  /** True when the instance leaves without (or before finishing) drain coordination. */
  skipDrain: boolean;
  /** For `drain-acked` / `drain-timeout`: why the drain was started. */
  drainReason?: DrainReason;
}

/** What held a wanted create back this pass. */
export type DeferCause =
  | "rate-limit"
  | "subnet-capacity"
  | "size-cap"
  | "max-concurrent-creates"
  | "mass-failure";

/** Creates that were wanted but not planned; for logs, metrics and the decision history. */
export interface DeferAction {
  kind: "defer";
  tenant: string;
  group: string;
  reason: CreateReason;
  blockedBy: DeferCause;
  count: number;
  /** When the block lifts by itself (rate limit); absent = when some event changes the state. */
  retryAt?: number;
}

/** The mass-failure guard tripped for a group: no replacements until the share falls. */
export interface AlertAction {
  kind: "alert";
  tenant: string;
  group: string;
  reason: "mass-failure";
  unhealthyCount: number;
  /** The largest unhealthy count the guard allows for this group. */
  limit: number;
}

/** One decision of a planning pass. */
export type Action = CreateAction | DrainAction | DeleteAction | DeferAction | AlertAction;

/** Output of a planning pass. */
export interface PlanResult {
  /** In execution order: per group (sorted by tenant, key), a replacement's create before the drain or delete of what it replaces. */
  actions: Action[];
  /** Earliest future time at which the plan changes without any event (drain deadline, expiry, rate limit). */
  nextWakeAt?: number;
}

/** The key of a group in maps such as {@link PlanSettings.lastCreateAt}: `tenant/key`. */
export function groupRef(tenant: string, key: string): string {
  return `${tenant}/${key}`;
}
