// SPDX-License-Identifier: Apache-2.0
/**
 * The infrastructure provider contract: what the server asks of a cloud (create, delete, status,
 * list, subnet capacity, leader network, load-balancer membership), in our own plain types. SDK
 * types never leave a backend. Backends live in a folder each (local/, fake/, aws/, google/,
 * proxmox/) and are chosen by create-provider.ts. Times are Unix milliseconds.
 */
import { type ErrorCode, NstanceError } from "../shared/errors.js";

/** The provider backends, as `shard.infra.provider` names them. */
export const PROVIDER_KINDS = ["local", "fake", "aws", "google", "proxmox"] as const;
/** One of {@link PROVIDER_KINDS}. */
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

/**
 * Normalised instance statuses (reference §6.1). Each backend maps its own states onto these;
 * anything it does not recognise is `unknown` (neither healthy nor unhealthy).
 */
export const PROVIDER_STATUSES = [
  "pending",
  "running",
  "stopping",
  "stopped",
  "suspending",
  "suspended",
  "deleting",
  "deleted",
  "repairing",
  "unknown",
] as const;
/** One of {@link PROVIDER_STATUSES}. */
export type ProviderStatus = (typeof PROVIDER_STATUSES)[number];

const UNHEALTHY_STATUSES: ReadonlySet<ProviderStatus> = new Set([
  "stopping",
  "stopped",
  "suspending",
  "suspended",
  "deleting",
  "deleted",
  "repairing",
]);

/**
 * True when the provider says the VM is not (or soon not) running: the instance needs replacing
 * and has no workload left to drain (seed 003). `pending`, `running` and `unknown` are not.
 */
export function isUnhealthyStatus(status: ProviderStatus): boolean {
  return UNHEALTHY_STATUSES.has(status);
}

/**
 * True when the VM is gone or going away for good (`deleting`, `deleted`): it will never run
 * again and needs no further provider delete. A `stopped` VM is unhealthy but not terminal: it
 * still exists (and still costs) until it is deleted.
 */
export function isTerminalStatus(status: ProviderStatus): boolean {
  return status === "deleting" || status === "deleted";
}

/** Load-balancer target states across every listener of one load balancer (reference §5.12). */
export const LB_TARGET_STATES = [
  "registered",
  "partially_registered",
  "healthy",
  "draining",
  "deregistered",
] as const;
/** One of {@link LB_TARGET_STATES}. */
export type LbTargetState = (typeof LB_TARGET_STATES)[number];

/** What {@link Provider.createInstance} needs; the server renders everything beforehand. */
export interface CreateInstanceRequest {
  clusterId: string;
  shard: string;
  tenant: string;
  /** Group key within the tenant. */
  group: string;
  /** Template key. */
  template: string;
  /** The template's 3-letter kind (also the instance ID prefix). */
  instanceKind: string;
  /** The nstance instance ID (puidv7), also used as the provider-side name where there is one. */
  instanceId: string;
  instanceType: string;
  /** Provider subnet ID picked from the group's subnet pool (AWS subnet, GCP subnetwork, …). */
  subnetId: string;
  /** Rendered userdata (plain text; each backend encodes it as its API wants). */
  userData: string;
  /** Registration nonce JWT. Secret: never logged. */
  nonce: string;
  /** The cluster CA certificate (PEM) the agent trusts. */
  caCertPem: string;
  /** Rendered provider-specific arguments (`args`), in the provider API's own field names. */
  args: Readonly<Record<string, unknown>>;
  /** Extra tags/labels applied as given (after the provider's own `nstance` tags). */
  tags: Readonly<Record<string, string>>;
  /** Environment the `local` provider passes to the agent process (server addresses …). */
  agentEnv?: Readonly<Record<string, string>>;
}

/** What {@link Provider.createInstance} returns. */
export interface CreateInstanceResult {
  instanceId: string;
  /** The provider's handle for the VM (AWS `i-…`, GCE instance name, Proxmox VMID, …). */
  providerInstanceId: string;
  status: ProviderStatus;
  privateIpv4?: string;
  privateIpv6?: string;
  hostname?: string;
  launchedAt: number;
}

/** A VM as the provider reports it. */
export interface InstanceStatus {
  /**
   * The nstance instance ID read back from the VM's tags or name; `""` for a VM that carries the
   * managed tags but no ID (a dangling VM garbage collection should delete).
   */
  instanceId: string;
  providerInstanceId: string;
  status: ProviderStatus;
  instanceType?: string;
  privateIpv4?: string;
  privateIpv6?: string;
  hostname?: string;
  /** Undefined when the provider does not say. */
  launchedAt?: number;
  region?: string;
  zone?: string;
  /** Association metadata: which cluster and shard own the VM. */
  clusterId?: string;
  shard?: string;
  /** Annotations: informational only, never used for ownership decisions. */
  tenant?: string;
  group?: string;
  template?: string;
  instanceKind?: string;
  /** All tags/labels of the VM, as the provider stores them. */
  tags: Record<string, string>;
}

/** Filter for {@link Provider.listInstances}: VMs managed by nstance in one cluster and shard. */
export interface ListInstancesRequest {
  clusterId: string;
  shard: string;
}

/** Outcome of {@link Provider.deleteInstance}. */
export type DeleteOutcome =
  /** The provider accepted the deletion (it may still be in progress: status `deleting`). */
  | "deleted"
  /** The VM did not exist (already gone): not an error. */
  | "not_found";

/** The stable network identity a shard leader takes over (reference §4.3). */
export interface LeaderNetwork {
  /** Stable leader IP (GCP alias IP; informational on AWS). */
  ip?: string;
  /** Provider resource ID: the ENI ID on AWS. */
  interfaceId?: string;
}

/** One AWS target group of a load balancer. */
export interface LbTargetGroup {
  readonly arn: string;
  readonly listenerPort: number;
  readonly targetPort: number;
  readonly proxyPort: number;
}

/**
 * A load balancer's provider settings; structurally the same as the compiled config's
 * `LoadBalancerConfig`, so that can be passed as is.
 */
export interface LbConfig {
  readonly provider: string;
  /** AWS: target groups (one target per group). */
  readonly targetGroups: readonly LbTargetGroup[];
  /** Google: zonal network endpoint groups (GCE_VM_IP). */
  readonly networkEndpointGroups: readonly string[];
  /** Google: forwarding-rule frontends (informational here). */
  readonly frontends: ReadonlyArray<{ readonly ip: string; readonly port: number }>;
}

/** Identifies one VM's membership of one load balancer. */
export interface LbTargetRequest {
  providerInstanceId: string;
  /** The load balancer's key in the config (`load_balancers.<name>`). */
  lbName: string;
  lbConfig: LbConfig;
  /** Zone of the VM; defaults to the provider's zone. */
  zone?: string;
  /** Target the wake proxy port instead of the workload port (tenant sleep). */
  wakeProxy?: boolean;
}

/** Identifies a load balancer for {@link Provider.listLbInstances}. */
export interface LbListRequest {
  lbName: string;
  lbConfig: LbConfig;
  zone?: string;
}

/**
 * An infrastructure provider. Every method may throw {@link ProviderError}; a missing VM is not an
 * error (`undefined` / `"not_found"`). Methods take an optional AbortSignal last.
 */
export interface Provider {
  /** Which backend this is. */
  readonly kind: ProviderKind;
  /** Creates and starts one VM tagged with the nstance association tags. */
  createInstance(req: CreateInstanceRequest, signal?: AbortSignal): Promise<CreateInstanceResult>;
  /** Deletes a VM; a VM that is already gone yields `"not_found"`. */
  deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome>;
  /** The VM's current status, or undefined when the provider does not know it (any more). */
  getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined>;
  /** Every live managed VM of the cluster and shard, all pages; deleted VMs are left out. */
  listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]>;
  /** True when a new VM fits in the subnet (AWS: more than 10 free IPs; others: always). */
  checkSubnetCapacity(subnetId: string, signal?: AbortSignal): Promise<boolean>;
  /** Moves the leader network to this VM (idempotent). */
  assignLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Takes the leader network off this VM, if it has it (idempotent). */
  releaseLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Registers the VM as a target of every listener of the load balancer. */
  registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void>;
  /** Removes the VM from every listener of the load balancer (idempotent). */
  deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void>;
  /** The VM's aggregate target state across the load balancer's listeners. */
  getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState>;
  /** Provider instance IDs registered with the load balancer. */
  listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]>;
  /** Releases clients and timers; idempotent. VMs are left as they are. */
  close(): Promise<void>;
}

/** Options for {@link ProviderError}. */
export interface ProviderErrorOptions {
  provider: ProviderKind;
  /** The provider operation, e.g. `createInstance`, `RunInstances`. */
  op: string;
  message: string;
  /** True when retrying later may succeed (throttling, 5xx, network, capacity). */
  transient: boolean;
  /** Defaults to `unavailable` for transient errors, else `internal`. */
  code?: ErrorCode;
  cause?: unknown;
}

/** A provider call failed. `transient` tells the reconciler whether to retry. */
export class ProviderError extends NstanceError {
  readonly provider: ProviderKind;
  readonly op: string;
  readonly transient: boolean;
  constructor(opts: ProviderErrorOptions) {
    super(
      opts.code ?? (opts.transient ? "unavailable" : "internal"),
      `${opts.provider} ${opts.op}: ${opts.message}`,
      opts.cause === undefined ? undefined : { cause: opts.cause },
    );
    this.provider = opts.provider;
    this.op = opts.op;
    this.transient = opts.transient;
    this.name = "ProviderError";
  }
}

/** True for HTTP statuses worth retrying: 408, 429 and every 5xx. */
export function isTransientHttpStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
