// SPDX-License-Identifier: Apache-2.0
/**
 * The `proxmox` provider: VMs on a Proxmox VE cluster through its REST API (`/api2/json`) with an
 * API token. A create picks a node (TOPSIS over free memory and CPU), allocates a VMID, full-clones
 * the template, sets cores/memory/bridge/tags/notes, attaches a NoCloud cloud-init ISO carrying the
 * userdata and starts the VM. The VM's name is the instance ID; its tags mark it as nstance's.
 * Leader network and load balancers are not supported (as in the reference).
 */
import { errorMessage, isAbortError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { silentLogger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import { isInstanceId, parseInstanceId } from "../instance-id.js";
import {
  type CreateInstanceRequest,
  type CreateInstanceResult,
  type DeleteOutcome,
  type InstanceStatus,
  isTransientHttpStatus,
  type LbListRequest,
  type LbTargetRequest,
  type LbTargetState,
  type LeaderNetwork,
  type ListInstancesRequest,
  type Provider,
  ProviderError,
  type ProviderStatus,
} from "../provider.js";
import { chooseProxmoxNode, type ProxmoxNodeLoad } from "./choose-node.js";
import { buildNoCloudIso } from "./nocloud-iso.js";

/** API base URL when `PROXMOX_API_URL` is unset (reference §6.2). */
export const DEFAULT_PROXMOX_API_URL = "https://localhost:8006/api2/json";
/** New VMIDs start above this and above every VMID in the cluster. */
export const DEFAULT_PROXMOX_VMID_FLOOR = 10_000;
/** Storage (with `iso` content) the cloud-init images are uploaded to. */
export const DEFAULT_PROXMOX_CLOUD_INIT_STORAGE = "local";
/** Interval between task status polls. */
export const DEFAULT_PROXMOX_TASK_POLL_INTERVAL_MS = 2_000;
/** How long one task (clone, start, stop, delete, upload) may take. */
export const DEFAULT_PROXMOX_TASK_TIMEOUT_MS = 300_000;

const VMID_MAX = 999_999_999;
const VMID_ATTEMPTS = 100;
const CLOUD_INIT_DEVICE = "ide2";
const NOTES_START = "**DO NOT EDIT BELOW - managed by nstance**";
const NOTES_END = "**DO NOT EDIT ABOVE - managed by nstance**";
/** Every nstance VM carries this tag; list and status ignore VMs without it. */
export const PROXMOX_OWNER_TAG = "nstance";

/** `args` keys the proxmox provider understands. */
export const PROXMOX_INSTANCE_ARGS = [
  "TemplateVMID",
  "TemplateName",
  "StoragePool",
  "Pool",
  "Cores",
  "Memory",
  "Bridge",
  "VLANTag",
  "StartOnBoot",
  "DiskSize",
] as const;

/** Options for {@link ProxmoxProvider}. */
export interface ProxmoxProviderOptions {
  /** See {@link DEFAULT_PROXMOX_API_URL} (`PROXMOX_API_URL`). */
  apiUrl?: string;
  /** `user@realm!tokenname` (`PROXMOX_TOKEN_ID`). */
  tokenId: string;
  /** The token's secret UUID (`PROXMOX_TOKEN_SECRET`). Never logged. */
  tokenSecret: string;
  region?: string;
  zone?: string;
  /** See {@link DEFAULT_PROXMOX_CLOUD_INIT_STORAGE}. */
  cloudInitStorage?: string;
  /** See {@link DEFAULT_PROXMOX_VMID_FLOOR}. */
  vmidFloor?: number;
  /** See {@link DEFAULT_PROXMOX_TASK_POLL_INTERVAL_MS}. */
  taskPollIntervalMs?: number;
  /** See {@link DEFAULT_PROXMOX_TASK_TIMEOUT_MS}. */
  taskTimeoutMs?: number;
  /** Defaults to the global fetch (self-signed API certificates: set NODE_EXTRA_CA_CERTS). */
  fetch?: typeof fetch;
  logger?: Logger;
}

/** A VM as `/cluster/resources?type=vm` lists it. */
interface VmResource {
  type?: string;
  vmid?: number;
  name?: string;
  node?: string;
  status?: string;
  template?: number;
  tags?: string;
  lock?: string;
}

interface TemplateArgs {
  templateVmid?: number;
  templateName?: string;
  storagePool: string;
  pool?: string;
  cores?: number;
  memory?: number;
  bridge?: string;
  vlanTag?: number;
  startOnBoot?: boolean;
  diskSize?: string;
}

/** Proxmox VE through REST; see the file comment. */
export class ProxmoxProvider implements Provider {
  readonly kind = "proxmox" as const;
  readonly #apiUrl: string;
  readonly #auth: string;
  readonly #region: string | undefined;
  readonly #zone: string | undefined;
  readonly #isoStorage: string;
  readonly #vmidFloor: number;
  readonly #pollMs: number;
  readonly #taskTimeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #logger: Logger;
  /** Last VMID handed out; seeded from the cluster on first use. */
  #vmidCounter = 0;

  constructor(opts: ProxmoxProviderOptions) {
    if (!opts.tokenId) throw new TypeError("tokenId (PROXMOX_TOKEN_ID) is required");
    if (!opts.tokenSecret) throw new TypeError("tokenSecret (PROXMOX_TOKEN_SECRET) is required");
    this.#apiUrl = (opts.apiUrl ?? DEFAULT_PROXMOX_API_URL).replace(/\/+$/, "");
    this.#auth = `PVEAPIToken=${opts.tokenId}=${opts.tokenSecret}`;
    this.#region = opts.region;
    this.#zone = opts.zone;
    this.#isoStorage = opts.cloudInitStorage ?? DEFAULT_PROXMOX_CLOUD_INIT_STORAGE;
    this.#vmidFloor = opts.vmidFloor ?? DEFAULT_PROXMOX_VMID_FLOOR;
    this.#pollMs = opts.taskPollIntervalMs ?? DEFAULT_PROXMOX_TASK_POLL_INTERVAL_MS;
    this.#taskTimeoutMs = opts.taskTimeoutMs ?? DEFAULT_PROXMOX_TASK_TIMEOUT_MS;
    this.#fetch = opts.fetch ?? fetch;
    this.#logger = opts.logger ?? silentLogger;
  }

  async createInstance(
    req: CreateInstanceRequest,
    signal?: AbortSignal,
  ): Promise<CreateInstanceResult> {
    const args = parseArgs(req.args);
    const nodes = await this.#get<ProxmoxNodeLoad[]>(
      "/cluster/resources",
      { type: "node" },
      signal,
    );
    const node = chooseProxmoxNode(nodes);
    if (!node) {
      throw new ProviderError({
        provider: "proxmox",
        op: "createInstance",
        message: "no online node with capacity",
        transient: true,
      });
    }
    const vms = await this.#get<VmResource[]>("/cluster/resources", { type: "vm" }, signal);
    const template = resolveTemplate(vms, args, node);
    const vmid = await this.#nextVmid(vms, signal);
    this.#logger.info("Cloning Proxmox template", {
      instance_id: req.instanceId,
      template_vmid: template.vmid,
      vmid,
      node,
    });
    const cloneUpid = await this.#send<string>(
      "POST",
      `/nodes/${enc(template.node)}/qemu/${template.vmid}/clone`,
      {
        newid: String(vmid),
        name: req.instanceId,
        full: "1",
        storage: args.storagePool,
        ...(template.node === node ? {} : { target: node }),
        ...(args.pool ? { pool: args.pool } : {}),
      },
      signal,
    );
    await this.#waitTask(cloneUpid, signal);
    try {
      await this.#configure(req, args, node, vmid, signal);
      const startUpid = await this.#send<string>(
        "POST",
        `/nodes/${enc(node)}/qemu/${vmid}/status/start`,
        {},
        signal,
      );
      await this.#waitTask(startUpid, signal);
    } catch (err) {
      // A clone that cannot be finished carries no tags yet and would leak: remove it.
      this.#logger.warn("Proxmox VM setup failed; removing the clone", {
        instance_id: req.instanceId,
        vmid,
        err,
      });
      await this.#destroy(node, vmid, undefined).catch((cleanupErr: unknown) => {
        this.#logger.error("Removing the failed clone failed", { vmid, err: cleanupErr });
      });
      throw err;
    }
    return {
      instanceId: req.instanceId,
      providerInstanceId: String(vmid),
      status: "pending",
      // cloud-init sets the instance ID as the local hostname.
      hostname: req.instanceId,
      launchedAt: Date.now(),
    };
  }

  async #configure(
    req: CreateInstanceRequest,
    args: TemplateArgs,
    node: string,
    vmid: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const base = `/nodes/${enc(node)}/qemu/${vmid}`;
    const config: Record<string, string> = {
      description: formatNotes(req, new Date()),
      tags: ownershipTags(req.clusterId, req.shard).join(";"),
    };
    if (args.cores !== undefined) config.cores = String(args.cores);
    if (args.memory !== undefined) config.memory = String(args.memory);
    // The subnet of a Proxmox VM is its bridge (reference §5.13).
    const bridge = args.bridge ?? req.subnetId;
    if (bridge) {
      config.net0 = `virtio,bridge=${bridge}${args.vlanTag ? `,tag=${args.vlanTag}` : ""}`;
    }
    if (args.startOnBoot) config.onboot = "1";
    await this.#send("PUT", `${base}/config`, config, signal);
    if (args.diskSize) {
      const upid = await this.#send<string | null>(
        "PUT",
        `${base}/resize`,
        { disk: "scsi0", size: args.diskSize },
        signal,
      );
      if (typeof upid === "string") await this.#waitTask(upid, signal);
    }
    let userData = req.userData;
    const head = userData.trimStart();
    if (!head.startsWith("#!") && !head.startsWith("#cloud-config")) {
      userData = `#!/bin/bash\n${userData}`;
    }
    const iso = buildNoCloudIso({
      userData,
      metaData: `instance-id: ${req.instanceId}\nlocal-hostname: ${req.instanceId}\n`,
    });
    const filename = isoName(vmid);
    const form = new FormData();
    form.set("content", "iso");
    form.set("filename", new Blob([iso], { type: "application/octet-stream" }), filename);
    const upload = await this.#send<string | null>(
      "POST",
      `/nodes/${enc(node)}/storage/${enc(this.#isoStorage)}/upload`,
      form,
      signal,
    );
    if (typeof upload === "string" && upload.startsWith("UPID:")) {
      await this.#waitTask(upload, signal);
    }
    await this.#send(
      "PUT",
      `${base}/config`,
      { [CLOUD_INIT_DEVICE]: `${this.#isoStorage}:iso/${filename},media=cdrom` },
      signal,
    );
  }

  async deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    const vm = await this.#findVm(instanceId, providerInstanceId, signal);
    if (!vm) return "not_found";
    if (instanceId && vm.name !== instanceId) {
      // The VMID was reused by another VM: ours is gone.
      this.#logger.info("Proxmox VMID now belongs to another VM", {
        vmid: vm.vmid,
        instance_id: instanceId,
        vm_name: vm.name,
      });
      return "not_found";
    }
    await this.#destroy(vm.node!, vm.vmid!, signal, vm.status === "running");
    this.#logger.info("Proxmox VM deleted", { instance_id: instanceId, vmid: vm.vmid });
    return "deleted";
  }

  /** Stops (if running), deletes with its disks, then removes the cloud-init image. */
  async #destroy(
    node: string,
    vmid: number,
    signal: AbortSignal | undefined,
    running = true,
  ): Promise<void> {
    const base = `/nodes/${enc(node)}/qemu/${vmid}`;
    if (running) {
      try {
        await this.#waitTask(
          await this.#send<string>("POST", `${base}/status/stop`, {}, signal),
          signal,
        );
      } catch (err) {
        // A VM that is not running cannot be stopped; the delete below reports real problems.
        this.#logger.debug("Stopping the VM before delete failed", { vmid, err });
      }
    }
    const upid = await this.#send<string>(
      "DELETE",
      base,
      { purge: "1", "destroy-unreferenced-disks": "1" },
      signal,
    );
    await this.#waitTask(upid, signal);
    try {
      const volid = `${this.#isoStorage}:iso/${isoName(vmid)}`;
      await this.#send(
        "DELETE",
        `/nodes/${enc(node)}/storage/${enc(this.#isoStorage)}/content/${enc(volid)}`,
        {},
        signal,
      );
    } catch (err) {
      this.#logger.warn("Removing the cloud-init image failed", { vmid, err });
    }
  }

  async getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    const vm = await this.#findVm(instanceId, providerInstanceId, signal);
    if (
      !vm ||
      (instanceId && vm.name !== instanceId) ||
      !parseTags(vm.tags).has(PROXMOX_OWNER_TAG)
    ) {
      return undefined;
    }
    const base = `/nodes/${enc(vm.node!)}/qemu/${vm.vmid}`;
    const current = await this.#get<{ status?: string; qmpstatus?: string; lock?: string }>(
      `${base}/status/current`,
      {},
      signal,
    );
    const config = await this.#get<{ description?: string }>(`${base}/config`, {}, signal);
    const status = this.#toStatus(
      { ...vm, status: current.status, lock: current.lock },
      current.qmpstatus,
    );
    return { ...status, ...parseNotes(config.description) };
  }

  async listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    const want = ownershipTags(req.clusterId, req.shard);
    const vms = await this.#get<VmResource[]>("/cluster/resources", { type: "vm" }, signal);
    return vms
      .filter((vm) => {
        if (vm.type !== "qemu" || vm.template === 1 || !isInstanceId(vm.name ?? "")) return false;
        const tags = parseTags(vm.tags);
        return want.every((t) => tags.has(t));
      })
      .map((vm) => ({ ...this.#toStatus(vm), clusterId: req.clusterId, shard: req.shard }));
  }

  async checkSubnetCapacity(_subnetId: string, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    return true;
  }

  /** Not supported on Proxmox (as in the reference): a no-op. */
  async assignLeaderNetwork(
    providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    signal?.throwIfAborted();
    this.#logger.debug("Leader network is not supported on Proxmox", {
      provider_instance_id: providerInstanceId,
    });
  }

  /** Not supported on Proxmox: a no-op. */
  async releaseLeaderNetwork(
    _providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    signal?.throwIfAborted();
  }

  /** Load balancers are not supported on Proxmox. */
  async registerWithLb(_req: LbTargetRequest, _signal?: AbortSignal): Promise<void> {
    throw unsupported("registerWithLb");
  }

  /** Nothing is ever registered, so nothing needs removing (deletes must not block on it). */
  async deregisterFromLb(_req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
  }

  /** Nothing is ever registered. */
  async getLbTargetState(_req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    signal?.throwIfAborted();
    return "deregistered";
  }

  /** Nothing is ever registered. */
  async listLbInstances(_req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted();
    return [];
  }

  async close(): Promise<void> {}

  // ---- internals -----------------------------------------------------------------------------

  #toStatus(vm: VmResource, qmpStatus?: string): InstanceStatus {
    const name = vm.name ?? "";
    return {
      instanceId: name,
      providerInstanceId: String(vm.vmid),
      status: mapProxmoxStatus(vm.status, qmpStatus, vm.lock),
      hostname: name || undefined,
      // The puidv7 name carries the creation time; Proxmox keeps none in its listing.
      launchedAt: isInstanceId(name) ? parseInstanceId(name).createdAt : undefined,
      region: this.#region,
      zone: this.#zone,
      tags: Object.fromEntries([...parseTags(vm.tags)].map((t) => [t, ""])),
    };
  }

  /** The VM by VMID or, for a record written before a crash that lacks the VMID, by name. */
  async #findVm(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<VmResource | undefined> {
    const vmid = Number(providerInstanceId);
    const byVmid = providerInstanceId !== "" && Number.isSafeInteger(vmid) && vmid > 0;
    if (!byVmid && !instanceId) return undefined;
    const vms = await this.#get<VmResource[]>("/cluster/resources", { type: "vm" }, signal);
    return vms.find(
      (v) =>
        v.type === "qemu" &&
        v.template !== 1 &&
        (byVmid
          ? v.vmid === vmid
          : providerInstanceId === "" &&
            v.name === instanceId &&
            parseTags(v.tags).has(PROXMOX_OWNER_TAG)),
    );
  }

  /** The next free VMID above every known one; checked with `/cluster/nextid`. */
  async #nextVmid(vms: VmResource[], signal: AbortSignal | undefined): Promise<number> {
    const highest = Math.max(
      this.#vmidFloor - 1,
      this.#vmidCounter,
      ...vms.map((v) => v.vmid ?? 0),
    );
    this.#vmidCounter = highest;
    for (let i = 0; i < VMID_ATTEMPTS; i++) {
      this.#vmidCounter = this.#vmidCounter >= VMID_MAX ? this.#vmidFloor : this.#vmidCounter + 1;
      const candidate = this.#vmidCounter;
      const res = await this.#api("GET", "/cluster/nextid", { vmid: String(candidate) }, signal);
      if (res.status === 200) return candidate;
      // 400 = taken; anything else is a real failure.
      if (res.status !== 400) this.#check("GET /cluster/nextid", res);
    }
    throw new ProviderError({
      provider: "proxmox",
      op: "createInstance",
      message: `no free VMID after ${VMID_ATTEMPTS} attempts`,
      transient: true,
    });
  }

  async #waitTask(upid: string, signal: AbortSignal | undefined): Promise<void> {
    const node = upid.split(":")[1];
    if (!upid.startsWith("UPID:") || !node) {
      throw new ProviderError({
        provider: "proxmox",
        op: "task",
        message: `not a task ID: ${JSON.stringify(upid)}`,
        transient: false,
      });
    }
    const deadline = Date.now() + this.#taskTimeoutMs;
    for (;;) {
      const task = await this.#get<{ status?: string; exitstatus?: string; type?: string }>(
        `/nodes/${enc(node)}/tasks/${enc(upid)}/status`,
        {},
        signal,
      );
      if (task.status === "stopped") {
        if (task.exitstatus === "OK") return;
        throw new ProviderError({
          provider: "proxmox",
          op: `task ${task.type ?? upid}`,
          message: task.exitstatus ?? "failed",
          transient: false,
        });
      }
      if (Date.now() >= deadline) {
        throw new ProviderError({
          provider: "proxmox",
          op: `task ${task.type ?? upid}`,
          message: `still running after ${this.#taskTimeoutMs} ms`,
          transient: true,
          code: "deadline_exceeded",
        });
      }
      await sleep(this.#pollMs, signal);
    }
  }

  async #get<T>(path: string, query: Record<string, string>, signal?: AbortSignal): Promise<T> {
    const res = await this.#api("GET", path, query, signal);
    this.#check(`GET ${path}`, res);
    return res.data as T;
  }

  async #send<T = unknown>(
    method: "POST" | "PUT" | "DELETE",
    path: string,
    params: Record<string, string> | FormData,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const res = await this.#api(method, path, params, signal);
    this.#check(`${method} ${path}`, res);
    return res.data as T;
  }

  #check(op: string, res: { status: number; reason: string; errors?: unknown }): void {
    if (res.status >= 200 && res.status < 300) return;
    const detail = res.errors ? ` ${JSON.stringify(res.errors)}` : "";
    throw new ProviderError({
      provider: "proxmox",
      op,
      message: `HTTP ${res.status} ${res.reason}${detail}`,
      // 596: the API node could not reach the node owning the resource.
      transient: isTransientHttpStatus(res.status) || res.status === 596,
      code:
        res.status === 401
          ? "unauthenticated"
          : res.status === 403
            ? "permission_denied"
            : res.status === 400
              ? "invalid_argument"
              : undefined,
    });
  }

  async #api(
    method: string,
    path: string,
    params: Record<string, string> | FormData,
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; reason: string; data: unknown; errors?: unknown }> {
    signal?.throwIfAborted();
    const url = new URL(this.#apiUrl + path);
    let body: string | FormData | undefined;
    const headers: Record<string, string> = { authorization: this.#auth };
    if (params instanceof FormData) {
      body = params;
    } else if (method === "GET" || method === "DELETE") {
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    } else {
      body = new URLSearchParams(params).toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    try {
      const res = await this.#fetch(url, { method, headers, body, signal });
      const text = await res.text();
      let parsed: { data?: unknown; errors?: unknown } = {};
      try {
        parsed = text ? (JSON.parse(text) as typeof parsed) : {};
      } catch {
        parsed = { errors: text.slice(0, 200) };
      }
      return {
        status: res.status,
        reason: res.statusText,
        data: parsed.data,
        errors: parsed.errors,
      };
    } catch (err) {
      if (isAbortError(err) && signal?.aborted) throw signal.reason;
      throw new ProviderError({
        provider: "proxmox",
        op: `${method} ${path}`,
        message: errorMessage(err),
        transient: true,
        cause: err,
      });
    }
  }
}

/** Proxmox VM state → normalised status (`status`, QMP status and lock of status/current). */
export function mapProxmoxStatus(
  status: string | undefined,
  qmpStatus?: string,
  lock?: string,
): ProviderStatus {
  // A VM being cloned or created is not ready yet.
  if (lock === "clone" || lock === "create") return "pending";
  if (status === "running") {
    if (qmpStatus === "paused" || qmpStatus === "suspended") return "suspended";
    if (qmpStatus === "prelaunch") return "pending";
    return "running";
  }
  if (status === "stopped") return "stopped";
  if (status === "paused") return "suspended";
  return "unknown";
}

/** Tags of an nstance VM: the owner tag plus `cluster-<id>` and `shard-<id>`. */
export function ownershipTags(clusterId: string, shard: string): string[] {
  // Differs from Go: prefixed, so a cluster and a shard with the same name cannot be confused.
  return [PROXMOX_OWNER_TAG, `cluster-${tagSafe(clusterId)}`, `shard-${tagSafe(shard)}`];
}

/** Proxmox tags allow `[a-z0-9_+.-]`. */
function tagSafe(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9_+.-]/g, "_");
}

function parseTags(tags: string | undefined): Set<string> {
  return new Set(
    (tags ?? "")
      .split(/[;, ]+/)
      .map((t) => t.trim())
      .filter((t) => t !== ""),
  );
}

function isoName(vmid: number): string {
  return `nstance-${vmid}-cidata.iso`;
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

/** The managed notes block in the VM description (Markdown: two trailing spaces break lines). */
function formatNotes(req: CreateInstanceRequest, created: Date): string {
  const lines = [NOTES_START];
  if (req.tenant) lines.push(`tenant: ${req.tenant}`);
  if (req.group) lines.push(`group: ${req.group}`);
  if (req.instanceKind) lines.push(`kind: ${req.instanceKind}`);
  if (req.template) lines.push(`template: ${req.template}`);
  lines.push(`created: ${created.toISOString()}`, NOTES_END);
  return lines.join("  \n");
}

/** Annotations read back from the notes block; informational only. */
function parseNotes(
  description: string | undefined,
): Pick<InstanceStatus, "tenant" | "group" | "instanceKind" | "template"> {
  const start = description?.indexOf(NOTES_START) ?? -1;
  const end = description?.indexOf(NOTES_END) ?? -1;
  if (!description || start < 0 || end <= start) return {};
  const out: Pick<InstanceStatus, "tenant" | "group" | "instanceKind" | "template"> = {};
  for (const line of description.slice(start + NOTES_START.length, end).split("\n")) {
    const at = line.indexOf(":");
    if (at < 0) continue;
    const key = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (key === "tenant") out.tenant = value;
    else if (key === "group") out.group = value;
    else if (key === "kind") out.instanceKind = value;
    else if (key === "template") out.template = value;
  }
  return out;
}

function unsupported(op: string): ProviderError {
  return new ProviderError({
    provider: "proxmox",
    op,
    message: "load balancers are not supported on Proxmox",
    transient: false,
    code: "invalid_argument",
  });
}

function invalidArgs(message: string): ProviderError {
  return new ProviderError({
    provider: "proxmox",
    op: "createInstance",
    message,
    transient: false,
    code: "invalid_argument",
  });
}

function parseArgs(raw: Readonly<Record<string, unknown>>): TemplateArgs {
  const known = new Set<string>(PROXMOX_INSTANCE_ARGS);
  const unknown = Object.keys(raw).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw invalidArgs(
      `unknown args ${unknown.join(", ")} (known: ${PROXMOX_INSTANCE_ARGS.join(", ")})`,
    );
  }
  const int = (k: string): number | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) <= 0)
      throw invalidArgs(`args.${k} must be a positive integer`);
    return v as number;
  };
  const str = (k: string): string | undefined => {
    const v = raw[k];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v === "")
      throw invalidArgs(`args.${k} must be a non-empty string`);
    return v;
  };
  const args: TemplateArgs = {
    templateVmid: int("TemplateVMID"),
    templateName: str("TemplateName"),
    storagePool: str("StoragePool") ?? "",
    pool: str("Pool"),
    cores: int("Cores"),
    memory: int("Memory"),
    bridge: str("Bridge"),
    vlanTag: int("VLANTag"),
    diskSize: str("DiskSize"),
  };
  if (raw.StartOnBoot !== undefined) {
    if (typeof raw.StartOnBoot !== "boolean")
      throw invalidArgs("args.StartOnBoot must be a boolean");
    args.startOnBoot = raw.StartOnBoot;
  }
  if (!args.storagePool) throw invalidArgs("args.StoragePool is required");
  if ((args.templateVmid === undefined) === (args.templateName === undefined)) {
    throw invalidArgs("exactly one of args.TemplateVMID and args.TemplateName is required");
  }
  return args;
}

/** Finds the template VM; by name it prefers a copy on the chosen node. */
function resolveTemplate(
  vms: VmResource[],
  args: TemplateArgs,
  node: string,
): { vmid: number; node: string } {
  const templates = vms.filter((v) => v.type === "qemu" && v.template === 1 && v.node);
  const matches =
    args.templateVmid !== undefined
      ? templates.filter((v) => v.vmid === args.templateVmid)
      : templates.filter((v) => v.name === args.templateName);
  const what =
    args.templateVmid !== undefined
      ? `VMID ${args.templateVmid}`
      : `named ${JSON.stringify(args.templateName)}`;
  if (matches.length === 0) throw invalidArgs(`no template ${what} in the cluster`);
  const local = matches.filter((v) => v.node === node);
  const pick = local.length === 1 ? local[0] : matches.length === 1 ? matches[0] : undefined;
  if (!pick) throw invalidArgs(`more than one template ${what}; use TemplateVMID`);
  return { vmid: pick.vmid!, node: pick.node! };
}
