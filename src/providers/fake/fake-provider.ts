// SPDX-License-Identifier: Apache-2.0
/**
 * The `fake` provider: simulated VMs in memory for tests and benchmarks. No timers: each status is
 * derived from the clock when asked (create → `pending` for `createDelayMs`, then `running`;
 * delete → `deleting` for `deleteDelayMs`, then `deleted`, then gone), so tens of thousands of
 * instances cost a few map entries. Failures, statuses and subnet capacity can be injected. No
 * agents run, so its instances never register unless a test starts agents from `onCreate`.
 */
import { NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { silentLogger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import {
  type CreateInstanceRequest,
  type CreateInstanceResult,
  type DeleteOutcome,
  type InstanceStatus,
  type LbListRequest,
  type LbTargetRequest,
  type LbTargetState,
  type LeaderNetwork,
  type ListInstancesRequest,
  type Provider,
  ProviderError,
  type ProviderStatus,
} from "../provider.js";

/** Time from create until the instance reports `running` (reference mock: 100 ms). */
export const DEFAULT_FAKE_CREATE_DELAY_MS = 100;
/** Time from delete until the instance reports `deleted` (reference mock: 50 ms). */
export const DEFAULT_FAKE_DELETE_DELAY_MS = 50;
/** How long a `deleted` instance stays visible to getInstanceStatus before it is gone. */
export const DEFAULT_FAKE_DELETED_RETENTION_MS = 60_000;

/** Options for {@link FakeProvider}. */
export interface FakeProviderOptions {
  /** See {@link DEFAULT_FAKE_CREATE_DELAY_MS}. */
  createDelayMs?: number;
  /** See {@link DEFAULT_FAKE_DELETE_DELAY_MS}. */
  deleteDelayMs?: number;
  /** See {@link DEFAULT_FAKE_DELETED_RETENTION_MS}. */
  deletedRetentionMs?: number;
  /** Latency added to every call, in ms (simulates a slow cloud API). Defaults to 0. */
  callLatencyMs?: number;
  region?: string;
  zone?: string;
  /** Clock in Unix ms; defaults to `Date.now`. Tests inject their own to step time. */
  now?: () => number;
  /** Called after each successful create, e.g. to start a real agent for the instance. */
  onCreate?: (req: CreateInstanceRequest, result: CreateInstanceResult) => void;
  logger?: Logger;
}

/** Call counts, for assertions and benchmarks. */
export interface FakeProviderCounters {
  createCalls: number;
  creates: number;
  createFailures: number;
  deleteCalls: number;
  deletes: number;
  statusCalls: number;
  listCalls: number;
  capacityChecks: number;
  lbRegisters: number;
  lbDeregisters: number;
  leaderAssigns: number;
  leaderReleases: number;
}

interface FakeVm {
  instanceId: string;
  providerInstanceId: string;
  clusterId: string;
  shard: string;
  tenant: string;
  group: string;
  template: string;
  instanceKind: string;
  instanceType: string;
  subnetId: string;
  privateIpv4: string;
  tags: Record<string, string>;
  createdAt: number;
  deleteRequestedAt?: number;
  pinnedStatus?: ProviderStatus;
}

const zeroCounters = (): FakeProviderCounters => ({
  createCalls: 0,
  creates: 0,
  createFailures: 0,
  deleteCalls: 0,
  deletes: 0,
  statusCalls: 0,
  listCalls: 0,
  capacityChecks: 0,
  lbRegisters: 0,
  lbDeregisters: 0,
  leaderAssigns: 0,
  leaderReleases: 0,
});

/** Simulated provider; see the file comment. */
export class FakeProvider implements Provider {
  readonly kind = "fake" as const;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #region: string;
  readonly #zone: string;
  readonly #onCreate: FakeProviderOptions["onCreate"];
  #createDelayMs: number;
  #deleteDelayMs: number;
  #deletedRetentionMs: number;
  #callLatencyMs: number;
  /** By provider instance ID. */
  readonly #vms = new Map<string, FakeVm>();
  /** Instance ID → provider instance ID. */
  readonly #byInstanceId = new Map<string, string>();
  readonly #lbMembers = new Map<string, Set<string>>();
  readonly #subnetCapacity = new Map<string, boolean>();
  #defaultSubnetCapacity = true;
  #leaderHolder: string | undefined;
  #seq = 0;
  #createError: Error | undefined;
  #failNextCreates = 0;
  #failNextCreatesError: Error | undefined;
  #deleteError: Error | undefined;
  #statusError: Error | undefined;
  #counters = zeroCounters();

  constructor(opts: FakeProviderOptions = {}) {
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger ?? silentLogger;
    this.#region = opts.region ?? "fake";
    this.#zone = opts.zone ?? "fake-a";
    this.#onCreate = opts.onCreate;
    this.#createDelayMs = opts.createDelayMs ?? DEFAULT_FAKE_CREATE_DELAY_MS;
    this.#deleteDelayMs = opts.deleteDelayMs ?? DEFAULT_FAKE_DELETE_DELAY_MS;
    this.#deletedRetentionMs = opts.deletedRetentionMs ?? DEFAULT_FAKE_DELETED_RETENTION_MS;
    this.#callLatencyMs = opts.callLatencyMs ?? 0;
  }

  // ---- Provider ----------------------------------------------------------------------------

  async createInstance(
    req: CreateInstanceRequest,
    signal?: AbortSignal,
  ): Promise<CreateInstanceResult> {
    this.#counters.createCalls++;
    await this.#latency(signal);
    const injected = this.#takeCreateFailure();
    if (injected) {
      this.#counters.createFailures++;
      throw injected;
    }
    if (this.#byInstanceId.has(req.instanceId)) {
      this.#counters.createFailures++;
      throw new ProviderError({
        provider: "fake",
        op: "createInstance",
        message: `instance ${req.instanceId} already exists`,
        transient: false,
        code: "already_exists",
      });
    }
    const seq = ++this.#seq;
    const vm: FakeVm = {
      instanceId: req.instanceId,
      providerInstanceId: `i-${seq.toString(16).padStart(17, "0")}`,
      clusterId: req.clusterId,
      shard: req.shard,
      tenant: req.tenant,
      group: req.group,
      template: req.template,
      instanceKind: req.instanceKind,
      instanceType: req.instanceType,
      subnetId: req.subnetId,
      privateIpv4: `10.${(seq >> 16) & 255}.${(seq >> 8) & 255}.${seq & 255}`,
      tags: { ...req.tags },
      createdAt: this.#now(),
    };
    this.#vms.set(vm.providerInstanceId, vm);
    this.#byInstanceId.set(vm.instanceId, vm.providerInstanceId);
    this.#counters.creates++;
    const result: CreateInstanceResult = {
      instanceId: vm.instanceId,
      providerInstanceId: vm.providerInstanceId,
      status: this.#statusOf(vm),
      privateIpv4: vm.privateIpv4,
      hostname: `ip-${vm.privateIpv4.replaceAll(".", "-")}`,
      launchedAt: vm.createdAt,
    };
    this.#logger.debug("Fake instance created", {
      instance_id: vm.instanceId,
      provider_instance_id: vm.providerInstanceId,
    });
    this.#onCreate?.(req, result);
    return result;
  }

  async deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    this.#counters.deleteCalls++;
    await this.#latency(signal);
    if (this.#deleteError) throw this.#deleteError;
    const vm = this.#find(instanceId, providerInstanceId);
    if (!vm || this.#statusOf(vm) === "deleted") return "not_found";
    if (vm.deleteRequestedAt === undefined) {
      vm.deleteRequestedAt = this.#now();
      vm.pinnedStatus = undefined;
      this.#counters.deletes++;
      for (const members of this.#lbMembers.values()) members.delete(vm.providerInstanceId);
    }
    return "deleted";
  }

  async getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    this.#counters.statusCalls++;
    await this.#latency(signal);
    if (this.#statusError) throw this.#statusError;
    const vm = this.#find(instanceId, providerInstanceId);
    return vm ? this.#toStatus(vm) : undefined;
  }

  async listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    this.#counters.listCalls++;
    await this.#latency(signal);
    if (this.#statusError) throw this.#statusError;
    const out: InstanceStatus[] = [];
    for (const vm of [...this.#vms.values()]) {
      if (this.#purgeIfExpired(vm)) continue;
      if (vm.clusterId !== req.clusterId || vm.shard !== req.shard) continue;
      const status = this.#toStatus(vm);
      if (status.status !== "deleted") out.push(status);
    }
    return out;
  }

  async checkSubnetCapacity(subnetId: string, signal?: AbortSignal): Promise<boolean> {
    this.#counters.capacityChecks++;
    await this.#latency(signal);
    return this.#subnetCapacity.get(subnetId) ?? this.#defaultSubnetCapacity;
  }

  async assignLeaderNetwork(
    providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    this.#counters.leaderAssigns++;
    await this.#latency(signal);
    this.#leaderHolder = providerInstanceId;
  }

  async releaseLeaderNetwork(
    providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    this.#counters.leaderReleases++;
    await this.#latency(signal);
    if (this.#leaderHolder === providerInstanceId) this.#leaderHolder = undefined;
  }

  async registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    this.#counters.lbRegisters++;
    await this.#latency(signal);
    let members = this.#lbMembers.get(req.lbName);
    if (!members) {
      members = new Set();
      this.#lbMembers.set(req.lbName, members);
    }
    members.add(req.providerInstanceId);
  }

  async deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    this.#counters.lbDeregisters++;
    await this.#latency(signal);
    this.#lbMembers.get(req.lbName)?.delete(req.providerInstanceId);
  }

  /** Registration is instant and healthy, as in the reference mock. */
  async getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    await this.#latency(signal);
    return this.#lbMembers.get(req.lbName)?.has(req.providerInstanceId)
      ? "healthy"
      : "deregistered";
  }

  async listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    await this.#latency(signal);
    return [...(this.#lbMembers.get(req.lbName) ?? [])];
  }

  async close(): Promise<void> {}

  // ---- Test controls -------------------------------------------------------------------------

  /** Changes the create delay for instances created from now on and those still pending. */
  setCreateDelayMs(ms: number): void {
    this.#createDelayMs = ms;
  }

  /** Changes the delete delay. */
  setDeleteDelayMs(ms: number): void {
    this.#deleteDelayMs = ms;
  }

  /** Changes the latency added to every call. */
  setCallLatencyMs(ms: number): void {
    this.#callLatencyMs = ms;
  }

  /** Every create throws `err` until cleared with `undefined`. */
  setCreateError(err: Error | undefined): void {
    this.#createError = err;
  }

  /** The next `n` creates throw `err` (default: a transient ProviderError), then creates work. */
  failNextCreates(n: number, err?: Error): void {
    this.#failNextCreates = n;
    this.#failNextCreatesError = err;
  }

  /** Every delete throws `err` until cleared. */
  setDeleteError(err: Error | undefined): void {
    this.#deleteError = err;
  }

  /** Every getInstanceStatus and listInstances throws `err` until cleared. */
  setStatusError(err: Error | undefined): void {
    this.#statusError = err;
  }

  /**
   * Pins an instance (by instance or provider instance ID) to a status, e.g. `stopped` as if it
   * crashed; `undefined` unpins. Deleting the instance unpins it. Throws `not_found` if unknown.
   */
  setInstanceStatus(id: string, status: ProviderStatus | undefined): void {
    const vm = this.#find(id, id);
    if (!vm) throw new NstanceError("not_found", `no fake instance ${id}`);
    vm.pinnedStatus = status;
  }

  /** Makes an instance vanish, as if deleted behind nstance's back. Returns false if unknown. */
  removeInstance(id: string): boolean {
    const vm = this.#find(id, id);
    if (!vm) return false;
    this.#forget(vm);
    return true;
  }

  /** Sets whether a subnet has room; `"*"` sets the default for subnets not set explicitly. */
  setSubnetCapacity(subnetId: string, hasCapacity: boolean): void {
    if (subnetId === "*") this.#defaultSubnetCapacity = hasCapacity;
    else this.#subnetCapacity.set(subnetId, hasCapacity);
  }

  /** Instances not (yet) deleted: pending, running, deleting or pinned. */
  instanceCount(): number {
    let n = 0;
    for (const vm of this.#vms.values()) if (this.#statusOf(vm) !== "deleted") n++;
    return n;
  }

  /** Every known instance, including deleted ones still retained, in creation order. */
  allInstances(): InstanceStatus[] {
    return [...this.#vms.values()].map((vm) => this.#toStatus(vm));
  }

  /** Provider instance IDs registered with a load balancer. */
  lbMembers(lbName: string): string[] {
    return [...(this.#lbMembers.get(lbName) ?? [])];
  }

  /** The provider instance ID currently holding the leader network. */
  leaderNetworkHolder(): string | undefined {
    return this.#leaderHolder;
  }

  /** A copy of the call counters. */
  counters(): FakeProviderCounters {
    return { ...this.#counters };
  }

  /** Forgets every instance, injected failure, LB membership and counter. */
  reset(): void {
    this.#vms.clear();
    this.#byInstanceId.clear();
    this.#lbMembers.clear();
    this.#subnetCapacity.clear();
    this.#defaultSubnetCapacity = true;
    this.#leaderHolder = undefined;
    this.#createError = undefined;
    this.#failNextCreates = 0;
    this.#deleteError = undefined;
    this.#statusError = undefined;
    this.#counters = zeroCounters();
  }

  // ---- internals -----------------------------------------------------------------------------

  async #latency(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#callLatencyMs > 0) await sleep(this.#callLatencyMs, signal);
  }

  #takeCreateFailure(): Error | undefined {
    if (this.#createError) return this.#createError;
    if (this.#failNextCreates > 0) {
      this.#failNextCreates--;
      return (
        this.#failNextCreatesError ??
        new ProviderError({
          provider: "fake",
          op: "createInstance",
          message: "injected failure",
          transient: true,
        })
      );
    }
    return undefined;
  }

  #find(instanceId: string, providerInstanceId: string): FakeVm | undefined {
    const vm =
      this.#vms.get(providerInstanceId) ?? this.#vms.get(this.#byInstanceId.get(instanceId) ?? "");
    if (!vm || this.#purgeIfExpired(vm)) return undefined;
    return vm;
  }

  #statusOf(vm: FakeVm): ProviderStatus {
    if (vm.pinnedStatus) return vm.pinnedStatus;
    const now = this.#now();
    if (vm.deleteRequestedAt !== undefined) {
      return now - vm.deleteRequestedAt >= this.#deleteDelayMs ? "deleted" : "deleting";
    }
    return now - vm.createdAt >= this.#createDelayMs ? "running" : "pending";
  }

  /** Drops a deleted instance once its retention has passed; true when it was dropped. */
  #purgeIfExpired(vm: FakeVm): boolean {
    if (
      vm.deleteRequestedAt !== undefined &&
      vm.pinnedStatus === undefined &&
      this.#now() - vm.deleteRequestedAt >= this.#deleteDelayMs + this.#deletedRetentionMs
    ) {
      this.#forget(vm);
      return true;
    }
    return false;
  }

  #forget(vm: FakeVm): void {
    this.#vms.delete(vm.providerInstanceId);
    if (this.#byInstanceId.get(vm.instanceId) === vm.providerInstanceId) {
      this.#byInstanceId.delete(vm.instanceId);
    }
    for (const members of this.#lbMembers.values()) members.delete(vm.providerInstanceId);
  }

  #toStatus(vm: FakeVm): InstanceStatus {
    return {
      instanceId: vm.instanceId,
      providerInstanceId: vm.providerInstanceId,
      status: this.#statusOf(vm),
      instanceType: vm.instanceType,
      privateIpv4: vm.privateIpv4,
      hostname: `ip-${vm.privateIpv4.replaceAll(".", "-")}`,
      launchedAt: vm.createdAt,
      region: this.#region,
      zone: this.#zone,
      clusterId: vm.clusterId,
      shard: vm.shard,
      tenant: vm.tenant,
      group: vm.group,
      template: vm.template,
      instanceKind: vm.instanceKind,
      tags: { ...vm.tags },
    };
  }
}
