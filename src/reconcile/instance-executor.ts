// SPDX-License-Identifier: Apache-2.0
/**
 * What the reconciler needs to carry out creates and deletes. The server's InstanceManager
 * (src/server/instances/instance-manager.ts) implements it; tests and benchmarks may pass their
 * own. Every method checks the leadership term right before each provider mutation and throws
 * StaleTermError (code `aborted`) when the term has moved on.
 */

/** Overrides an on-demand create may carry (CreateInstance `config`). */
export interface CreateOverrides {
  instanceType?: string;
  subnetPool?: string;
  /** Merged over the group's vars. */
  vars?: Readonly<Record<string, string>>;
}

/** Options of one create. */
export interface ExecutorCreateOptions {
  /** Why: a plan create reason (`scale-up`, `unhealthy` …) or `on-demand`. */
  reason: string;
  /** Created through the Operator API; never counted by the reconciler. */
  onDemand?: boolean;
  /** The instance this one replaces; recorded as that instance's `replaced_by` before the create. */
  replaces?: string;
  /** Use this ID instead of minting one (the reconciler mints IDs to track creates in flight). */
  instanceId?: string;
  overrides?: CreateOverrides;
}

/** A created instance. */
export interface ExecutorCreated {
  instanceId: string;
  providerInstanceId: string;
  /** Provider status right after the create (`pending`, `running`). */
  status: string;
}

/** Options of one delete. */
export interface ExecutorDeleteOptions {
  /** A plan delete reason (`scale-down`, `drain-acked` …), `operator` or a GC reason. */
  reason: string;
  /** True when the instance leaves without (or before finishing) drain coordination. */
  skipDrain?: boolean;
  /** For drain completions: why the drain was started. */
  drainReason?: string;
  /** Facts for the decision history. */
  evidence?: Record<string, unknown>;
}

/** Outcome of a delete: `deleted`, or `unknown` when there was no live instance to delete. */
export type ExecutorDeleteOutcome = "deleted" | "unknown";

/** Carries out instance creates and deletes under a leadership term. */
export interface InstanceExecutor {
  /** Creates one instance of group `tenant/group`. */
  create(
    tenant: string,
    group: string,
    opts: ExecutorCreateOptions,
    term: number,
    signal?: AbortSignal,
  ): Promise<ExecutorCreated>;
  /** Deletes an instance: load balancers first, then the provider, then the record and row. */
  delete(
    instanceId: string,
    opts: ExecutorDeleteOptions,
    term: number,
    signal?: AbortSignal,
  ): Promise<ExecutorDeleteOutcome>;
}
