// SPDX-License-Identifier: Apache-2.0
/**
 * The `google` provider: Compute Engine instances through the REST API v1 with plain `fetch`
 * (instances insert/delete/get, aggregated list by `nstance-*` labels, alias IP for the leader
 * network, zonal GCE_VM_IP network endpoint groups for load balancers). The access token source
 * and the base URL are injectable, so tests answer from a local HTTP server.
 */
import { errorMessage, isAbortError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { silentLogger } from "../../shared/logger.js";
import {
  type CreateInstanceRequest,
  type CreateInstanceResult,
  type DeleteOutcome,
  type InstanceStatus,
  isTransientHttpStatus,
  type LbConfig,
  type LbListRequest,
  type LbTargetRequest,
  type LbTargetState,
  type LeaderNetwork,
  type ListInstancesRequest,
  type Provider,
  ProviderError,
  type ProviderStatus,
} from "../provider.js";
import { adcTokenSource, type TokenSource } from "./adc-token-source.js";
import { buildInstanceResource, GOOGLE_LABELS, sanitizeLabel } from "./instance-resource.js";

/** Compute Engine REST API v1 base URL. */
export const DEFAULT_GOOGLE_COMPUTE_URL = "https://compute.googleapis.com/compute/v1/";
/** Boot image when a template's args name none. */
export const DEFAULT_GOOGLE_SOURCE_IMAGE = "projects/debian-cloud/global/images/family/debian-12";
/** Boot disk size in GB when a template's args name none. */
export const DEFAULT_GOOGLE_DISK_SIZE_GB = 30;
/** Metadata key carrying the userdata (run by the guest agent on Google's images). */
export const DEFAULT_GOOGLE_USERDATA_KEY = "startup-script";
/** How long create, alias-IP and NEG operations may take. */
export const DEFAULT_GOOGLE_OPERATION_TIMEOUT_MS = 300_000;
/** Instances per aggregated-list page (the API maximum). */
export const DEFAULT_GOOGLE_LIST_PAGE_SIZE = 500;

/** Operation error codes worth retrying later. */
const TRANSIENT_OPERATION_CODES = new Set([
  "ZONE_RESOURCE_POOL_EXHAUSTED",
  "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
  "QUOTA_EXCEEDED",
  "RESOURCE_NOT_READY",
  "INTERNAL_ERROR",
]);

/** Options for {@link GoogleProvider}. */
export interface GoogleProviderOptions {
  project: string;
  region: string;
  zone: string;
  /** See {@link DEFAULT_GOOGLE_COMPUTE_URL}; tests point it at a local server. */
  baseUrl?: string;
  /** OAuth access tokens; defaults to Application Default Credentials. */
  tokenSource?: TokenSource;
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** See {@link DEFAULT_GOOGLE_SOURCE_IMAGE}. */
  sourceImage?: string;
  /** See {@link DEFAULT_GOOGLE_DISK_SIZE_GB}. */
  diskSizeGb?: number;
  /** See {@link DEFAULT_GOOGLE_USERDATA_KEY}. */
  userDataKey?: string;
  /** See {@link DEFAULT_GOOGLE_OPERATION_TIMEOUT_MS}. */
  operationTimeoutMs?: number;
  /** See {@link DEFAULT_GOOGLE_LIST_PAGE_SIZE}. */
  listPageSize?: number;
  logger?: Logger;
}

/** The parts of the REST `Instance` resource we read. */
interface GceInstance {
  name?: string;
  status?: string;
  machineType?: string;
  zone?: string;
  labels?: Record<string, string>;
  creationTimestamp?: string;
  networkInterfaces?: Array<{
    name?: string;
    network?: string;
    subnetwork?: string;
    networkIP?: string;
    ipv6Address?: string;
    fingerprint?: string;
    aliasIpRanges?: Array<{ ipCidrRange?: string; subnetworkRangeName?: string }>;
  }>;
}

interface GceOperation {
  name?: string;
  status?: string;
  error?: { errors?: Array<{ code?: string; message?: string }> };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
}

interface HttpResult<T> {
  status: number;
  body: T;
}

/** Compute Engine through REST; see the file comment. */
export class GoogleProvider implements Provider {
  readonly kind = "google" as const;
  readonly #project: string;
  readonly #region: string;
  readonly #zone: string;
  readonly #baseUrl: string;
  readonly #token: TokenSource;
  readonly #fetch: typeof fetch;
  readonly #sourceImage: string;
  readonly #diskSizeGb: number;
  readonly #userDataKey: string;
  readonly #operationTimeoutMs: number;
  readonly #pageSize: number;
  readonly #logger: Logger;

  constructor(opts: GoogleProviderOptions) {
    if (!opts.project) throw new TypeError("project is required");
    if (!opts.region) throw new TypeError("region is required");
    if (!opts.zone) throw new TypeError("zone is required");
    this.#project = opts.project;
    this.#region = opts.region;
    this.#zone = opts.zone;
    const base = opts.baseUrl ?? DEFAULT_GOOGLE_COMPUTE_URL;
    this.#baseUrl = base.endsWith("/") ? base : `${base}/`;
    this.#token = opts.tokenSource ?? adcTokenSource();
    this.#fetch = opts.fetch ?? fetch;
    this.#sourceImage = opts.sourceImage ?? DEFAULT_GOOGLE_SOURCE_IMAGE;
    this.#diskSizeGb = opts.diskSizeGb ?? DEFAULT_GOOGLE_DISK_SIZE_GB;
    this.#userDataKey = opts.userDataKey ?? DEFAULT_GOOGLE_USERDATA_KEY;
    this.#operationTimeoutMs = opts.operationTimeoutMs ?? DEFAULT_GOOGLE_OPERATION_TIMEOUT_MS;
    this.#pageSize = opts.listPageSize ?? DEFAULT_GOOGLE_LIST_PAGE_SIZE;
    this.#logger = opts.logger ?? silentLogger;
  }

  async createInstance(
    req: CreateInstanceRequest,
    signal?: AbortSignal,
  ): Promise<CreateInstanceResult> {
    const body = buildInstanceResource(req, {
      project: this.#project,
      region: this.#region,
      zone: this.#zone,
      sourceImage: this.#sourceImage,
      diskSizeGb: this.#diskSizeGb,
      userDataKey: this.#userDataKey,
    });
    this.#logger.info("Creating Compute Engine instance", {
      instance_id: req.instanceId,
      instance_type: req.instanceType,
      subnet_id: req.subnetId,
    });
    const op = "instances.insert";
    const res = await this.#request<GceOperation>(op, "POST", this.#zonal("instances"), {
      body,
      signal,
    });
    if (res.status === 409) {
      // A retried insert after a lost response: the instance exists; it is ours if labelled so.
      this.#logger.info("Instance already exists; adopting it", { instance_id: req.instanceId });
    } else {
      this.#check(op, res);
      await this.#wait(op, res.body, signal);
    }
    const vm = await this.#getInstance(req.instanceId, signal);
    if (!vm || vm.labels?.[GOOGLE_LABELS.instanceId] !== sanitizeLabel(req.instanceId)) {
      throw new ProviderError({
        provider: "google",
        op,
        message: vm
          ? `an instance named ${req.instanceId} exists but is not labelled as this instance`
          : `instance ${req.instanceId} not found after insert`,
        transient: !vm,
        code: vm ? "already_exists" : undefined,
      });
    }
    const status = this.#toStatus(vm);
    return {
      instanceId: req.instanceId,
      providerInstanceId: req.instanceId,
      status: status.status,
      privateIpv4: status.privateIpv4,
      privateIpv6: status.privateIpv6,
      hostname: status.hostname,
      launchedAt: status.launchedAt ?? Date.now(),
    };
  }

  /** Starts the delete; the operation runs on (status `stopping`, then not found). */
  async deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    const name = providerInstanceId || instanceId;
    const op = "instances.delete";
    const res = await this.#request<GceOperation>(
      op,
      "DELETE",
      this.#zonal(`instances/${enc(name)}`),
      {
        signal,
      },
    );
    if (res.status === 404) return "not_found";
    this.#check(op, res);
    const failed = res.body.error?.errors?.[0];
    if (res.body.status === "DONE" && failed) throw this.#operationError(op, res.body);
    this.#logger.info("Compute Engine instance delete started", { instance_id: instanceId });
    return "deleted";
  }

  async getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    const vm = await this.#getInstance(providerInstanceId || instanceId, signal);
    if (!vm) return undefined;
    const status = this.#toStatus(vm);
    if (instanceId && status.instanceId !== sanitizeLabel(instanceId)) {
      this.#logger.warn("Compute Engine instance carries another nstance instance ID", {
        instance_id: instanceId,
        labelled_instance_id: status.instanceId,
      });
      return undefined;
    }
    return status;
  }

  /** Every managed instance of the cluster and shard in the project (aggregated over zones). */
  async listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    const filter = [
      `(labels.${GOOGLE_LABELS.managed} = "true")`,
      `(labels.${GOOGLE_LABELS.clusterId} = "${sanitizeLabel(req.clusterId)}")`,
      `(labels.${GOOGLE_LABELS.shard} = "${sanitizeLabel(req.shard)}")`,
    ].join(" ");
    const out: InstanceStatus[] = [];
    let pageToken: string | undefined;
    const op = "instances.aggregatedList";
    do {
      const query: Record<string, string> = { filter, maxResults: String(this.#pageSize) };
      if (pageToken) query.pageToken = pageToken;
      const res = await this.#request<{
        items?: Record<string, { instances?: GceInstance[] }>;
        nextPageToken?: string;
      }>(op, "GET", `projects/${enc(this.#project)}/aggregated/instances`, { query, signal });
      this.#check(op, res);
      for (const scope of Object.values(res.body.items ?? {})) {
        for (const vm of scope.instances ?? []) out.push(this.#toStatus(vm));
      }
      pageToken = res.body.nextPageToken || undefined;
    } while (pageToken);
    return out;
  }

  /** Compute Engine does not report free addresses per subnet; always true (reference §5.13). */
  async checkSubnetCapacity(_subnetId: string, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    return true;
  }

  /** Adds the leader IP as a /32 alias on nic0 (idempotent). */
  async assignLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    const range = leaderRange(network);
    await this.#updateAliases(providerInstanceId, signal, (ranges) =>
      ranges.some((r) => r.ipCidrRange === range) ? undefined : [...ranges, { ipCidrRange: range }],
    );
  }

  /** Removes the leader alias from nic0 if present. */
  async releaseLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    const range = leaderRange(network);
    await this.#updateAliases(providerInstanceId, signal, (ranges) =>
      ranges.some((r) => r.ipCidrRange === range)
        ? ranges.filter((r) => r.ipCidrRange !== range)
        : undefined,
    );
  }

  async registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    const target = await this.#resolveEndpoint(req, signal);
    if (!target) {
      throw new ProviderError({
        provider: "google",
        op: "networkEndpointGroups.attachNetworkEndpoints",
        message: `instance ${req.providerInstanceId} not found`,
        transient: false,
        code: "not_found",
      });
    }
    await this.#endpointOp("attachNetworkEndpoints", target, signal);
  }

  async deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    // An instance that is gone has left its NEGs with it.
    const target = await this.#resolveEndpoint(req, signal);
    if (target) await this.#endpointOp("detachNetworkEndpoints", target, signal);
  }

  async getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    const target = await this.#resolveEndpoint(req, signal);
    if (!target) return "deregistered";
    let state: LbTargetState = "deregistered";
    await this.#listEndpoints(target.zone, target.neg, "SHOW", signal, (item) => {
      if (
        baseName(item.networkEndpoint?.instance) === req.providerInstanceId &&
        item.networkEndpoint?.ipAddress === target.ipAddress
      ) {
        const healths = item.healths ?? [];
        state = healths.some((h) => h.healthState === "DRAINING")
          ? "draining"
          : healths.length > 0 && healths.every((h) => h.healthState === "HEALTHY")
            ? "healthy"
            : "registered";
      }
    });
    return state;
  }

  async listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    const zone = req.zone ?? this.#zone;
    const seen = new Set<string>();
    for (const neg of requireNegs(req.lbConfig)) {
      await this.#listEndpoints(zone, neg, "SKIP", signal, (item) => {
        const name = baseName(item.networkEndpoint?.instance);
        if (name) seen.add(name);
      });
    }
    return [...seen];
  }

  async close(): Promise<void> {}

  // ---- internals -----------------------------------------------------------------------------

  #zonal(path: string, zone = this.#zone): string {
    return `projects/${enc(this.#project)}/zones/${enc(zone)}/${path}`;
  }

  async #getInstance(name: string, signal?: AbortSignal): Promise<GceInstance | undefined> {
    const op = "instances.get";
    const res = await this.#request<GceInstance>(op, "GET", this.#zonal(`instances/${enc(name)}`), {
      signal,
    });
    if (res.status === 404) return undefined;
    this.#check(op, res);
    return res.body;
  }

  async #updateAliases(
    name: string,
    signal: AbortSignal | undefined,
    change: (
      ranges: NonNullable<NonNullable<GceInstance["networkInterfaces"]>[number]["aliasIpRanges"]>,
    ) => Array<{ ipCidrRange?: string }> | undefined,
  ): Promise<void> {
    const op = "instances.updateNetworkInterface";
    const vm = await this.#getInstance(name, signal);
    const nic = vm?.networkInterfaces?.[0];
    if (!nic) {
      throw new ProviderError({
        provider: "google",
        op,
        message: vm ? `instance ${name} has no network interface` : `instance ${name} not found`,
        transient: false,
        code: "not_found",
      });
    }
    const next = change(nic.aliasIpRanges ?? []);
    if (!next) return;
    const res = await this.#request<GceOperation>(
      op,
      "PATCH",
      this.#zonal(`instances/${enc(name)}/updateNetworkInterface`),
      {
        query: { networkInterface: nic.name ?? "nic0" },
        // The fingerprint makes this a compare-and-swap against concurrent changes.
        body: { fingerprint: nic.fingerprint, aliasIpRanges: next },
        signal,
      },
    );
    this.#check(op, res);
    await this.#wait(op, res.body, signal);
  }

  async #resolveEndpoint(
    req: LbTargetRequest,
    signal: AbortSignal | undefined,
  ): Promise<{ zone: string; neg: string; ipAddress: string; instance: string } | undefined> {
    const zone = req.zone ?? this.#zone;
    const negs = requireNegs(req.lbConfig);
    const vm = await this.#getInstance(req.providerInstanceId, signal);
    if (!vm) return undefined;
    const op = "networkEndpointGroups.get";
    for (const negName of negs) {
      const res = await this.#request<{ subnetwork?: string; networkEndpointType?: string }>(
        op,
        "GET",
        this.#zonal(`networkEndpointGroups/${enc(negName)}`, zone),
        { signal },
      );
      this.#check(op, res);
      if (res.body.networkEndpointType !== "GCE_VM_IP") {
        throw new ProviderError({
          provider: "google",
          op,
          message: `NEG ${negName} has type ${res.body.networkEndpointType}, want GCE_VM_IP`,
          transient: false,
          code: "invalid_argument",
        });
      }
      for (const nic of vm.networkInterfaces ?? []) {
        if (nic.networkIP && samePath(nic.subnetwork, res.body.subnetwork)) {
          return {
            zone,
            neg: negName,
            ipAddress: nic.networkIP,
            instance: vm.name ?? req.providerInstanceId,
          };
        }
      }
    }
    throw new ProviderError({
      provider: "google",
      op,
      message: `no configured NEG matches a subnet of instance ${req.providerInstanceId}`,
      transient: false,
      code: "invalid_argument",
    });
  }

  async #endpointOp(
    method: "attachNetworkEndpoints" | "detachNetworkEndpoints",
    t: { zone: string; neg: string; ipAddress: string; instance: string },
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const op = `networkEndpointGroups.${method}`;
    const res = await this.#request<GceOperation>(
      op,
      "POST",
      this.#zonal(`networkEndpointGroups/${enc(t.neg)}/${method}`, t.zone),
      { body: { networkEndpoints: [{ instance: t.instance, ipAddress: t.ipAddress }] }, signal },
    );
    this.#check(op, res);
    await this.#wait(op, res.body, signal, t.zone);
  }

  async #listEndpoints(
    zone: string,
    neg: string,
    healthStatus: "SHOW" | "SKIP",
    signal: AbortSignal | undefined,
    each: (item: {
      networkEndpoint?: { instance?: string; ipAddress?: string };
      healths?: Array<{ healthState?: string }>;
    }) => void,
  ): Promise<void> {
    const op = "networkEndpointGroups.listNetworkEndpoints";
    let pageToken: string | undefined;
    do {
      const res = await this.#request<{
        items?: Array<Parameters<typeof each>[0]>;
        nextPageToken?: string;
      }>(op, "POST", this.#zonal(`networkEndpointGroups/${enc(neg)}/listNetworkEndpoints`, zone), {
        query: pageToken ? { pageToken } : undefined,
        body: { healthStatus },
        signal,
      });
      this.#check(op, res);
      for (const item of res.body.items ?? []) each(item);
      pageToken = res.body.nextPageToken || undefined;
    } while (pageToken);
  }

  /** Waits for a zonal operation with the `wait` method (which returns within ~2 min). */
  async #wait(
    op: string,
    operation: GceOperation,
    signal: AbortSignal | undefined,
    zone = this.#zone,
  ): Promise<void> {
    const deadline = Date.now() + this.#operationTimeoutMs;
    let current = operation;
    while (current.status !== "DONE") {
      if (!current.name) break;
      if (Date.now() >= deadline) {
        throw new ProviderError({
          provider: "google",
          op,
          message: `operation ${current.name} not done after ${this.#operationTimeoutMs} ms`,
          transient: true,
          code: "deadline_exceeded",
        });
      }
      const res = await this.#request<GceOperation>(
        "zoneOperations.wait",
        "POST",
        this.#zonal(`operations/${enc(current.name)}/wait`, zone),
        { signal },
      );
      this.#check("zoneOperations.wait", res);
      current = res.body;
    }
    if (current.error?.errors?.length || current.httpErrorStatusCode) {
      throw this.#operationError(op, current);
    }
  }

  #operationError(op: string, operation: GceOperation): ProviderError {
    const first = operation.error?.errors?.[0];
    const code = first?.code ?? `HTTP ${operation.httpErrorStatusCode}`;
    return new ProviderError({
      provider: "google",
      op,
      message: `operation ${operation.name ?? "?"} failed: ${code}: ${first?.message ?? operation.httpErrorMessage ?? ""}`,
      transient:
        TRANSIENT_OPERATION_CODES.has(first?.code ?? "") ||
        isTransientHttpStatus(operation.httpErrorStatusCode ?? 0),
    });
  }

  /** Throws a ProviderError for any non-2xx answer. */
  #check(op: string, res: HttpResult<unknown>): void {
    if (res.status >= 200 && res.status < 300) return;
    const err = (res.body as { error?: { message?: string; errors?: Array<{ reason?: string }> } })
      ?.error;
    const reason = err?.errors?.[0]?.reason;
    throw new ProviderError({
      provider: "google",
      op,
      message: `HTTP ${res.status}${reason ? ` ${reason}` : ""}: ${err?.message ?? "request failed"}`,
      transient:
        isTransientHttpStatus(res.status) ||
        reason === "rateLimitExceeded" ||
        reason === "userRateLimitExceeded",
      code:
        res.status === 404
          ? "not_found"
          : res.status === 403
            ? "permission_denied"
            : res.status === 400
              ? "invalid_argument"
              : undefined,
    });
  }

  async #request<T>(
    op: string,
    method: string,
    path: string,
    opts: { query?: Record<string, string>; body?: unknown; signal?: AbortSignal },
  ): Promise<HttpResult<T>> {
    opts.signal?.throwIfAborted();
    const url = new URL(path, this.#baseUrl);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    try {
      const token = await this.#token(opts.signal);
      const res = await this.#fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
      });
      const text = await res.text();
      let body: unknown = {};
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          body = { error: { message: text.slice(0, 200) } };
        }
      }
      return { status: res.status, body: body as T };
    } catch (err) {
      if (isAbortError(err) && opts.signal?.aborted) throw opts.signal.reason;
      throw new ProviderError({
        provider: "google",
        op,
        message: `${method} ${url.pathname}: ${errorMessage(err)}`,
        transient: true,
        cause: err,
      });
    }
  }

  #toStatus(vm: GceInstance): InstanceStatus {
    const labels = vm.labels ?? {};
    const nic = vm.networkInterfaces?.[0];
    const created = vm.creationTimestamp ? Date.parse(vm.creationTimestamp) : Number.NaN;
    return {
      instanceId: labels[GOOGLE_LABELS.instanceId] ?? "",
      providerInstanceId: vm.name ?? "",
      status: mapGceStatus(vm.status),
      instanceType: baseName(vm.machineType),
      privateIpv4: nic?.networkIP || undefined,
      privateIpv6: nic?.ipv6Address || undefined,
      // The instance name is its hostname on Compute Engine.
      hostname: vm.name,
      launchedAt: Number.isNaN(created) ? undefined : created,
      region: this.#region,
      zone: baseName(vm.zone) ?? this.#zone,
      clusterId: labels[GOOGLE_LABELS.clusterId],
      shard: labels[GOOGLE_LABELS.shard],
      tenant: labels[GOOGLE_LABELS.tenant],
      group: labels[GOOGLE_LABELS.group],
      template: labels[GOOGLE_LABELS.template],
      instanceKind: labels[GOOGLE_LABELS.instanceKind],
      tags: { ...labels },
    };
  }
}

/**
 * Compute Engine instance status → normalised status. Differs from Go: `TERMINATED` is a stopped
 * instance on Compute Engine (it still exists and keeps its disks), so it maps to `stopped`, not
 * `deleted`; a deleted instance is simply not found.
 */
export function mapGceStatus(status: string | undefined): ProviderStatus {
  switch (status) {
    case "PROVISIONING":
    case "STAGING":
      return "pending";
    case "RUNNING":
      return "running";
    case "STOPPING":
      return "stopping";
    case "STOPPED":
    case "TERMINATED":
      return "stopped";
    case "SUSPENDING":
      return "suspending";
    case "SUSPENDED":
      return "suspended";
    case "REPAIRING":
      return "repairing";
    default:
      return "unknown";
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function baseName(url: string | undefined): string | undefined {
  return url ? url.slice(url.lastIndexOf("/") + 1) : undefined;
}

/** Compares two resource references by their `projects/…` path (full URLs or relative). */
function samePath(a: string | undefined, b: string | undefined): boolean {
  const norm = (s: string) => s.replace(/^.*?(projects\/)/, "$1").replace(/\/$/, "");
  return a !== undefined && b !== undefined && norm(a) === norm(b);
}

function requireNegs(cfg: LbConfig): readonly string[] {
  if (cfg.networkEndpointGroups.length === 0) {
    throw new ProviderError({
      provider: "google",
      op: "networkEndpointGroups",
      message: "the load balancer has no network_endpoint_groups",
      transient: false,
      code: "invalid_argument",
    });
  }
  return cfg.networkEndpointGroups;
}

function leaderRange(network: LeaderNetwork): string {
  const ip = network.ip ?? "";
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    throw new ProviderError({
      provider: "google",
      op: "instances.updateNetworkInterface",
      message: `the leader network needs an IPv4 address (got ${JSON.stringify(ip)}); IPv6 is not supported`,
      transient: false,
      code: "invalid_argument",
    });
  }
  return `${ip}/32`;
}
