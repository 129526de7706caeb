// SPDX-License-Identifier: Apache-2.0
/**
 * A Provider decorator that times and counts every call by operation, and remembers recent
 * outcomes for the readiness check. Behaviour is unchanged: results and errors pass through.
 */
import type {
  CreateInstanceRequest,
  CreateInstanceResult,
  DeleteOutcome,
  InstanceStatus,
  LbListRequest,
  LbTargetRequest,
  LbTargetState,
  LeaderNetwork,
  ListInstancesRequest,
  Provider,
  ProviderKind,
} from "../../providers/provider.js";
import { ProviderError } from "../../providers/provider.js";
import { errorMessage, isAbortError } from "../../shared/errors.js";
import { CallHealth, type CallHealthSnapshot } from "./call-health.js";
import type { ServerMetrics } from "./server-metrics.js";

/** Options for {@link MeteredProvider}. */
export interface MeteredProviderOptions {
  provider: Provider;
  metrics: Pick<ServerMetrics, "providerCall">;
  now?: () => number;
}

/** Wraps a Provider with metrics; see the file comment. */
export class MeteredProvider implements Provider {
  readonly #p: Provider;
  readonly #metrics: MeteredProviderOptions["metrics"];
  readonly #now: () => number;
  readonly #health = new CallHealth();

  constructor(opts: MeteredProviderOptions) {
    if (!opts.provider) throw new TypeError("provider is required");
    this.#p = opts.provider;
    this.#metrics = opts.metrics;
    this.#now = opts.now ?? Date.now;
  }

  /** The wrapped backend's kind. */
  get kind(): ProviderKind {
    return this.#p.kind;
  }

  /** Recent call outcomes, failures counted over `windowMs`. */
  health(windowMs: number): CallHealthSnapshot {
    return this.#health.snapshot(this.#now(), windowMs);
  }

  async #call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const out = await fn();
      this.#metrics.providerCall(this.#p.kind, operation, performance.now() - started, "ok");
      this.#health.ok(this.#now());
      return out;
    } catch (err) {
      const ms = performance.now() - started;
      if (isAbortError(err)) {
        this.#metrics.providerCall(this.#p.kind, operation, ms, "aborted");
      } else {
        const transient = err instanceof ProviderError ? err.transient : false;
        this.#metrics.providerCall(this.#p.kind, operation, ms, "error", transient);
        this.#health.failed(this.#now(), `${operation}: ${errorMessage(err)}`);
      }
      throw err;
    }
  }

  createInstance(req: CreateInstanceRequest, signal?: AbortSignal): Promise<CreateInstanceResult> {
    return this.#call("createInstance", () => this.#p.createInstance(req, signal));
  }

  deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    return this.#call("deleteInstance", () =>
      this.#p.deleteInstance(instanceId, providerInstanceId, signal),
    );
  }

  getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    return this.#call("getInstanceStatus", () =>
      this.#p.getInstanceStatus(instanceId, providerInstanceId, signal),
    );
  }

  listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    return this.#call("listInstances", () => this.#p.listInstances(req, signal));
  }

  checkSubnetCapacity(subnetId: string, signal?: AbortSignal): Promise<boolean> {
    return this.#call("checkSubnetCapacity", () => this.#p.checkSubnetCapacity(subnetId, signal));
  }

  assignLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#call("assignLeaderNetwork", () =>
      this.#p.assignLeaderNetwork(providerInstanceId, network, signal),
    );
  }

  releaseLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#call("releaseLeaderNetwork", () =>
      this.#p.releaseLeaderNetwork(providerInstanceId, network, signal),
    );
  }

  registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    return this.#call("registerWithLb", () => this.#p.registerWithLb(req, signal));
  }

  deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    return this.#call("deregisterFromLb", () => this.#p.deregisterFromLb(req, signal));
  }

  getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    return this.#call("getLbTargetState", () => this.#p.getLbTargetState(req, signal));
  }

  listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    return this.#call("listLbInstances", () => this.#p.listLbInstances(req, signal));
  }

  /** Closes the wrapped provider (not metered). */
  close(): Promise<void> {
    return this.#p.close();
  }
}
