// SPDX-License-Identifier: Apache-2.0
/**
 * Load-balancer registration driven by health reports (seed 003 steps 5–6, reference §5.12): the
 * first report of an instance whose group lists load balancers creates `lb_instances` rows
 * (`pending`); each report then reconciles rows that are not `registered` — ask the provider for
 * the target state, register when it says `deregistered` or `partially_registered`, and mark the
 * row `registered` once the provider reports the target `healthy`. A provider error marks the row
 * `failed` with the error; the next report retries it. Nothing is registered while the instance
 * drains (deregistration comes before deletion) or while its tenant's target registration is
 * blocked (sleep). A `deregistered` row was withdrawn on purpose and is left alone.
 */
import type { Db } from "../../db/database.js";
import { getInstance } from "../../db/instances-table.js";
import type { LbTargetRequest, Provider } from "../../providers/provider.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { runInBackground } from "../../shared/run-in-background.js";
import type { ConfigStore } from "../config-store.js";
import type { InstanceRef } from "./file-delivery.js";

/** Time allowed for each provider call. */
export const DEFAULT_LB_REQUEST_TIMEOUT_MS = 30_000;

/** Row statuses of `lb_instances`. */
export type LbInstanceStatus = "pending" | "registered" | "deregistered" | "failed";

/** The provider calls registration needs (a Provider satisfies it). */
export type LbProvider = Pick<Provider, "registerWithLb" | "getLbTargetState">;

/** Options for {@link LbRegistration}. */
export interface LbRegistrationOptions {
  db: Db;
  provider: LbProvider;
  configStore: Pick<ConfigStore, "current" | "group">;
  logger: Logger;
  /** True while the tenant's targets must stay withdrawn (tenant sleep). */
  isTargetRegistrationBlocked?: (tenant: string) => boolean;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Defaults to {@link DEFAULT_LB_REQUEST_TIMEOUT_MS}. */
  requestTimeoutMs?: number;
}

/** An `lb_instances` row. */
export interface LbInstanceRow {
  lbKey: string;
  instanceId: string;
  status: LbInstanceStatus;
  updatedAt: number;
  lastError: string | undefined;
}

/** The `lb_instances` rows of an instance. */
export function listLbInstances(db: Db, instanceId: string): LbInstanceRow[] {
  const rows = db
    .prepare(
      "SELECT lb_key, status, updated_at, last_error FROM lb_instances WHERE instance_id = ? ORDER BY lb_key",
    )
    .all(instanceId) as Array<{
    lb_key: string;
    status: LbInstanceStatus;
    updated_at: number;
    last_error: string | null;
  }>;
  return rows.map((r) => ({
    lbKey: r.lb_key,
    instanceId,
    status: r.status,
    updatedAt: r.updated_at,
    lastError: r.last_error ?? undefined,
  }));
}

/** Registers instances with their groups' load balancers; see the file comment. */
export class LbRegistration {
  readonly #opts: LbRegistrationOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** Instances whose every load balancer is registered, with the LB set that was checked. */
  readonly #done = new Map<string, string>();
  readonly #jobs = new Map<string, Promise<void>>();
  readonly #rerun = new Set<string>();
  readonly #stop = new AbortController();

  constructor(opts: LbRegistrationOptions) {
    if (!opts.provider) throw new TypeError("provider is required");
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
  }

  /** After a report: reconcile the instance's registrations unless all are done. Never throws. */
  onReport(ref: InstanceRef): void {
    if (this.#stop.signal.aborted) return;
    const group = this.#opts.configStore.group(ref.tenant, ref.groupKey);
    if (!group || group.loadBalancers.length === 0) return;
    if (this.#done.get(ref.id) === group.loadBalancers.join("\n")) return;
    if (this.#jobs.has(ref.id)) {
      this.#rerun.add(ref.id);
      return;
    }
    const job = runInBackground(
      "lb_registration",
      async () => {
        try {
          do {
            this.#rerun.delete(ref.id);
            await this.reconcile(ref, this.#stop.signal);
          } while (this.#rerun.has(ref.id) && !this.#stop.signal.aborted);
        } finally {
          this.#jobs.delete(ref.id);
        }
      },
      this.#logger,
    );
    this.#jobs.set(ref.id, job);
  }

  /** Forgets the instance (its registrations are checked again at its next report). */
  forget(instanceId: string): void {
    this.#done.delete(instanceId);
  }

  /** Stops and waits for running reconciliations. Idempotent. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#jobs.values());
  }

  #setStatus(lbKey: string, instanceId: string, status: LbInstanceStatus, error?: string): void {
    this.#opts.db
      .prepare(
        `INSERT INTO lb_instances (lb_key, instance_id, status, updated_at, last_error)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (lb_key, instance_id) DO UPDATE SET status = excluded.status,
           updated_at = excluded.updated_at, last_error = excluded.last_error`,
      )
      .run(lbKey, instanceId, status, this.#now(), error ?? null);
  }

  /** Reconciles every load balancer of the instance's group once. */
  async reconcile(ref: InstanceRef, signal: AbortSignal): Promise<void> {
    const o = this.#opts;
    const group = o.configStore.group(ref.tenant, ref.groupKey);
    if (!group || group.loadBalancers.length === 0) return;
    const row = getInstance(o.db, ref.id);
    if (!row || row.deletedAt !== undefined || row.drainStartedAt !== undefined) return;
    if (!row.providerId) return;
    if (o.isTargetRegistrationBlocked?.(ref.tenant)) return;
    const lbConfigs = o.configStore.current().config.loadBalancers;
    const existing = new Map(listLbInstances(o.db, ref.id).map((r) => [r.lbKey, r]));
    for (const lbKey of group.loadBalancers) {
      const current = existing.get(lbKey);
      if (current?.status === "registered" || current?.status === "deregistered") continue;
      const lbConfig = lbConfigs[lbKey];
      if (!lbConfig) {
        this.#logger.warn("Group names a load balancer that is not configured", {
          instance_id: ref.id,
          lb: lbKey,
        });
        continue;
      }
      if (!current) this.#setStatus(lbKey, ref.id, "pending");
      const req: LbTargetRequest = { providerInstanceId: row.providerId, lbName: lbKey, lbConfig };
      const callSignal = AbortSignal.any([
        signal,
        AbortSignal.timeout(o.requestTimeoutMs ?? DEFAULT_LB_REQUEST_TIMEOUT_MS),
      ]);
      try {
        let state = await o.provider.getLbTargetState(req, callSignal);
        if (state === "deregistered" || state === "partially_registered") {
          await o.provider.registerWithLb(req, callSignal);
          this.#logger.info("Instance registered with load balancer", {
            instance_id: ref.id,
            lb: lbKey,
          });
          state = await o.provider.getLbTargetState(req, callSignal);
        }
        this.#setStatus(lbKey, ref.id, state === "healthy" ? "registered" : "pending");
      } catch (err) {
        if (signal.aborted) return;
        this.#setStatus(lbKey, ref.id, "failed", errorMessage(err));
        this.#logger.warn("Load balancer registration failed; retried at the next report", {
          instance_id: ref.id,
          lb: lbKey,
          err: errorMessage(err),
        });
      }
    }
    const after = listLbInstances(o.db, ref.id);
    const allRegistered = group.loadBalancers.every(
      (k) => after.find((r) => r.lbKey === k)?.status === "registered",
    );
    if (allRegistered) this.#done.set(ref.id, group.loadBalancers.join("\n"));
  }
}
