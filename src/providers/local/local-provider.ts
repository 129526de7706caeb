// SPDX-License-Identifier: Apache-2.0
/**
 * The `local` provider, the embedded default: each instance is a real `nstance-agent` process on
 * this machine, given its CA certificate and nonce in its own identity directory the way cloud
 * userdata would. Everything about an instance lives on disk under
 * `{stateDir}/instances/{instanceId}/` (identity/, keys/, recv/, meta.json, agent.log) and status
 * comes from the process itself, so agents are spawned detached (own process group) and outlive
 * the server: a new LocalProvider over the same directory re-adopts them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage, NstanceError } from "../../shared/errors.js";
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
import { probeProcess, readStartTicks } from "./process-probe.js";

/** Time an agent gets between SIGTERM and SIGKILL on delete. */
export const DEFAULT_LOCAL_STOP_GRACE_MS = 5_000;
/** Logs of deleted instances kept in `{stateDir}/deleted/` (oldest removed first). */
export const DEFAULT_LOCAL_DELETED_LOGS_KEPT = 100;
/** The address every local instance reports. */
export const LOCAL_INSTANCE_IPV4 = "127.0.0.1";
/**
 * Variables of the server's environment passed on to agents when no `baseEnv` is given. Anything
 * else (encryption keys, cloud credentials) stays with the server.
 */
export const DEFAULT_LOCAL_INHERITED_ENV = [
  "PATH",
  "HOME",
  "USER",
  "LANG",
  "LC_ALL",
  "TZ",
  "TMPDIR",
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_EXTRA_CA_CERTS",
];

const POLL_MS = 25;
const KILL_WAIT_MS = 2_000;
const SAFE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PROVIDER_ID_PREFIX = "nstance-agent-";

/** The default agent command: this checkout's agent entry point run through tsx. */
export function defaultAgentCommand(): string[] {
  const entry = fileURLToPath(new URL("../../bin/nstance-agent.ts", import.meta.url));
  // An absolute loader URL: `--import tsx` would resolve from the child's cwd (its instance dir).
  let tsx = "tsx";
  try {
    tsx = import.meta.resolve("tsx");
  } catch {
    // Not resolvable from here: leave it to the child's own resolution.
  }
  return [process.execPath, "--import", tsx, entry];
}

/** Options for {@link LocalProvider}. */
export interface LocalProviderOptions {
  /** Directory holding `instances/`, `deleted/` and `load-balancers.json`. Required. */
  stateDir: string;
  /** Agent argv (executable first). Defaults to {@link defaultAgentCommand}. */
  command?: readonly string[];
  /** Environment every agent starts from. Defaults to {@link DEFAULT_LOCAL_INHERITED_ENV} of ours. */
  baseEnv?: Readonly<Record<string, string | undefined>>;
  /** See {@link DEFAULT_LOCAL_STOP_GRACE_MS}. */
  stopGraceMs?: number;
  /** See {@link DEFAULT_LOCAL_DELETED_LOGS_KEPT}. */
  deletedLogsKept?: number;
  region?: string;
  zone?: string;
  logger?: Logger;
}

/** `meta.json` of a local instance. Holds no secrets (the nonce lives in identity/ only). */
export interface LocalInstanceMeta {
  instanceId: string;
  /** Absent until the process was spawned. */
  pid?: number;
  /** Process start time in clock ticks since boot: with the PID, the process's identity. */
  startTicks?: number;
  startedAt: number;
  /** What the provider last did; the live status comes from the process. */
  status: "pending" | "running" | "deleting";
  clusterId: string;
  shard: string;
  tenant: string;
  group: string;
  template: string;
  instanceKind: string;
  instanceType: string;
  subnetId: string;
  tags: Record<string, string>;
  command: string[];
}

type LbFile = Record<string, string[]>;

/** Instances as local agent processes; see the file comment. */
export class LocalProvider implements Provider {
  readonly kind = "local" as const;
  readonly #stateDir: string;
  readonly #instancesDir: string;
  readonly #deletedDir: string;
  readonly #trashDir: string;
  readonly #lbFile: string;
  readonly #command: readonly string[];
  readonly #baseEnv: Readonly<Record<string, string | undefined>>;
  readonly #stopGraceMs: number;
  readonly #deletedLogsKept: number;
  readonly #region: string;
  readonly #zone: string;
  readonly #logger: Logger;
  /** Instances this provider is spawning right now (no PID yet: `pending`, not `stopped`). */
  readonly #creating = new Set<string>();
  readonly #deleting = new Map<string, Promise<DeleteOutcome>>();
  readonly #children = new Set<ChildProcess>();
  #lbLock: Promise<unknown> = Promise.resolve();

  constructor(opts: LocalProviderOptions) {
    if (!opts.stateDir) throw new TypeError("stateDir is required");
    // Absolute, because agents run with their instance directory as working directory.
    this.#stateDir = resolve(opts.stateDir);
    this.#instancesDir = join(this.#stateDir, "instances");
    this.#deletedDir = join(this.#stateDir, "deleted");
    this.#trashDir = join(opts.stateDir, ".trash");
    this.#lbFile = join(opts.stateDir, "load-balancers.json");
    this.#command = opts.command ?? defaultAgentCommand();
    if (this.#command.length === 0) throw new TypeError("command must not be empty");
    this.#baseEnv = opts.baseEnv ?? inheritedEnv(process.env);
    this.#stopGraceMs = opts.stopGraceMs ?? DEFAULT_LOCAL_STOP_GRACE_MS;
    this.#deletedLogsKept = opts.deletedLogsKept ?? DEFAULT_LOCAL_DELETED_LOGS_KEPT;
    this.#region = opts.region ?? "local";
    this.#zone = opts.zone ?? "local-a";
    this.#logger = opts.logger ?? silentLogger;
  }

  /** The directory of one instance (whether or not it exists). */
  instanceDir(instanceId: string): string {
    return join(this.#instancesDir, checkId(instanceId));
  }

  async createInstance(
    req: CreateInstanceRequest,
    signal?: AbortSignal,
  ): Promise<CreateInstanceResult> {
    signal?.throwIfAborted();
    const id = checkId(req.instanceId);
    const dir = join(this.#instancesDir, id);
    await mkdir(this.#instancesDir, { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") {
        throw new ProviderError({
          provider: "local",
          op: "createInstance",
          message: `instance ${id} already exists`,
          transient: false,
          code: "already_exists",
        });
      }
      throw this.#fsError("createInstance", err);
    }
    this.#creating.add(id);
    try {
      return await this.#spawnInstance(req, dir);
    } catch (err) {
      // Nothing half-made stays behind: a failed create leaves no instance.
      await rm(dir, { recursive: true, force: true });
      if (err instanceof ProviderError) throw err;
      throw this.#fsError("createInstance", err);
    } finally {
      this.#creating.delete(id);
    }
  }

  async #spawnInstance(req: CreateInstanceRequest, dir: string): Promise<CreateInstanceResult> {
    const id = req.instanceId;
    const identityDir = join(dir, "identity");
    const keysDir = join(dir, "keys");
    const recvDir = join(dir, "recv");
    for (const d of [identityDir, keysDir, recvDir]) await mkdir(d, { mode: 0o700 });
    // Written before the agent starts, as cloud userdata would.
    await writeFile(join(identityDir, "ca.crt"), req.caCertPem, { mode: 0o600 });
    await writeFile(join(identityDir, "nonce.jwt"), req.nonce, { mode: 0o600 });
    const meta: LocalInstanceMeta = {
      instanceId: id,
      startedAt: Date.now(),
      status: "pending",
      clusterId: req.clusterId,
      shard: req.shard,
      tenant: req.tenant,
      group: req.group,
      template: req.template,
      instanceKind: req.instanceKind,
      instanceType: req.instanceType,
      subnetId: req.subnetId,
      tags: { ...req.tags },
      command: [...this.#command],
    };
    await writeMeta(dir, meta);

    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.#baseEnv)) if (v !== undefined) env[k] = v;
    Object.assign(
      env,
      {
        NSTANCE_IDENTITY_DIR: identityDir,
        NSTANCE_KEYS_DIR: keysDir,
        NSTANCE_RECV_DIR: recvDir,
        NSTANCE_INSTANCE_HOSTNAME: `${id}.local`,
        NSTANCE_INSTANCE_IPV4: LOCAL_INSTANCE_IPV4,
        NSTANCE_PROVIDER: "none",
      },
      req.agentEnv,
      // Last: the PID-reuse guard recognises the process by this entry.
      { NSTANCE_INSTANCE_ID: id },
    );

    const log = await open(join(dir, "agent.log"), "a", 0o600);
    let child: ChildProcess;
    try {
      child = spawn(this.#command[0]!, this.#command.slice(1), {
        cwd: dir,
        env,
        detached: true,
        stdio: ["ignore", log.fd, log.fd],
      });
      await spawned(child);
    } catch (err) {
      throw new ProviderError({
        provider: "local",
        op: "createInstance",
        message: `cannot start ${this.#command[0]}: ${errorMessage(err)}`,
        transient: false,
        cause: err,
      });
    } finally {
      await log.close();
    }
    const pid = child.pid!;
    this.#children.add(child);
    child.on("error", (err) => {
      this.#logger.warn("Local instance process error", { instance_id: id, pid, err });
    });
    child.once("exit", (code, sig) => {
      this.#children.delete(child);
      this.#logger.info("Local instance process exited", {
        instance_id: id,
        pid,
        exit_code: code,
        signal: sig,
      });
    });
    child.unref();
    meta.pid = pid;
    meta.startTicks = await readStartTicks(pid);
    meta.status = "running";
    await writeMeta(dir, meta);
    this.#logger.info("Local instance started", { instance_id: id, pid, dir });
    return {
      instanceId: id,
      providerInstanceId: PROVIDER_ID_PREFIX + id,
      status: "running",
      privateIpv4: LOCAL_INSTANCE_IPV4,
      hostname: `${id}.local`,
      launchedAt: meta.startedAt,
    };
  }

  async deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    signal?.throwIfAborted();
    const id = resolveId(instanceId, providerInstanceId);
    let running = this.#deleting.get(id);
    if (!running) {
      running = this.#delete(id, signal).finally(() => this.#deleting.delete(id));
      this.#deleting.set(id, running);
    }
    return running;
  }

  async #delete(id: string, signal: AbortSignal | undefined): Promise<DeleteOutcome> {
    const dir = join(this.#instancesDir, id);
    const meta = await readMeta(dir);
    if (!meta) {
      // A directory without meta.json is debris of an interrupted create or delete.
      await rm(dir, { recursive: true, force: true });
      return "not_found";
    }
    meta.status = "deleting";
    await writeMeta(dir, meta);
    if (meta.pid !== undefined) await this.#stopProcess(meta, signal);
    try {
      await this.#setLbMembership(undefined, PROVIDER_ID_PREFIX + id, false);
      // Rename first so the instance vanishes at once, then keep its log and remove the rest.
      await mkdir(this.#trashDir, { recursive: true, mode: 0o700 });
      const trash = join(this.#trashDir, `${id}-${randomBytes(4).toString("hex")}`);
      await rename(dir, trash);
      await mkdir(this.#deletedDir, { recursive: true, mode: 0o700 });
      await rename(join(trash, "agent.log"), join(this.#deletedDir, `${id}.log`)).catch(
        (err: unknown) => {
          // No log (the process never started): nothing to keep.
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        },
      );
      await rm(trash, { recursive: true, force: true });
      await this.#pruneDeletedLogs();
    } catch (err) {
      throw this.#fsError("deleteInstance", err);
    }
    this.#logger.info("Local instance deleted", { instance_id: id, pid: meta.pid });
    return "deleted";
  }

  /** SIGTERM the process group (SIGCONT too, so a stopped agent can act on it), then SIGKILL. */
  async #stopProcess(meta: LocalInstanceMeta, signal: AbortSignal | undefined): Promise<void> {
    const pid = meta.pid!;
    const first = await probeProcess({
      pid,
      startTicks: meta.startTicks,
      envMarker: `NSTANCE_INSTANCE_ID=${meta.instanceId}`,
    });
    // Not ours (PID reused) or already ended: never signal it.
    if (first !== "running" && first !== "stopped") return;
    // Identity confirmed; from here on follow the PID by its start time alone, because an exiting
    // process's environment already reads empty while it is not yet a zombie.
    const ident = { pid, startTicks: meta.startTicks ?? (await readStartTicks(pid)) };
    const alive = async () => {
      const s = await probeProcess(ident);
      return s === "running" || s === "stopped";
    };
    killGroup(ident.pid, "SIGTERM");
    killGroup(ident.pid, "SIGCONT");
    const termDeadline = Date.now() + this.#stopGraceMs;
    while (Date.now() < termDeadline && (await alive())) await sleep(POLL_MS, signal);
    if (!(await alive())) return;
    this.#logger.warn("Local instance ignored SIGTERM; killing it", {
      instance_id: meta.instanceId,
      pid: ident.pid,
    });
    killGroup(ident.pid, "SIGKILL");
    const killDeadline = Date.now() + KILL_WAIT_MS;
    while (Date.now() < killDeadline && (await alive())) await sleep(POLL_MS, signal);
  }

  async getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    signal?.throwIfAborted();
    const id = resolveId(instanceId, providerInstanceId);
    const meta = await readMeta(join(this.#instancesDir, id));
    return meta ? this.#toStatus(meta) : undefined;
  }

  async listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    signal?.throwIfAborted();
    let names: string[];
    try {
      names = await readdir(this.#instancesDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw this.#fsError("listInstances", err);
    }
    const statuses = await Promise.all(
      names
        .filter((n) => SAFE_ID.test(n))
        .map(async (n) => {
          const meta = await readMeta(join(this.#instancesDir, n));
          if (!meta || meta.clusterId !== req.clusterId || meta.shard !== req.shard) {
            return undefined;
          }
          return this.#toStatus(meta);
        }),
    );
    return statuses.filter((s): s is InstanceStatus => s !== undefined);
  }

  /** Local instances need no addresses. */
  async checkSubnetCapacity(_subnetId: string, signal?: AbortSignal): Promise<boolean> {
    signal?.throwIfAborted();
    return true;
  }

  /** Nothing to move: every local server shares the loopback network. */
  async assignLeaderNetwork(
    providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    signal?.throwIfAborted();
    this.#logger.debug("Leader network is a no-op locally", {
      provider_instance_id: providerInstanceId,
    });
  }

  /** See {@link assignLeaderNetwork}. */
  async releaseLeaderNetwork(
    _providerInstanceId: string,
    _network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    signal?.throwIfAborted();
  }

  async registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    await this.#setLbMembership(req.lbName, req.providerInstanceId, true);
  }

  async deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    await this.#setLbMembership(req.lbName, req.providerInstanceId, false);
  }

  /** A registered local target is healthy at once. */
  async getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    signal?.throwIfAborted();
    const lbs = await this.#readLbFile();
    return lbs[req.lbName]?.includes(req.providerInstanceId) ? "healthy" : "deregistered";
  }

  async listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted();
    return [...((await this.#readLbFile())[req.lbName] ?? [])];
  }

  /** Stops watching child exits. The agents keep running: they outlive the server by design. */
  async close(): Promise<void> {
    for (const child of this.#children) child.removeAllListeners("exit");
    this.#children.clear();
  }

  // ---- internals -----------------------------------------------------------------------------

  async #toStatus(meta: LocalInstanceMeta): Promise<InstanceStatus> {
    return {
      instanceId: meta.instanceId,
      providerInstanceId: PROVIDER_ID_PREFIX + meta.instanceId,
      status: await this.#liveStatus(meta),
      instanceType: meta.instanceType,
      privateIpv4: LOCAL_INSTANCE_IPV4,
      hostname: `${meta.instanceId}.local`,
      launchedAt: meta.startedAt,
      region: this.#region,
      zone: this.#zone,
      clusterId: meta.clusterId,
      shard: meta.shard,
      tenant: meta.tenant,
      group: meta.group,
      template: meta.template,
      instanceKind: meta.instanceKind,
      tags: { ...meta.tags },
    };
  }

  async #liveStatus(meta: LocalInstanceMeta): Promise<ProviderStatus> {
    // Only a delete in flight is `deleting`: one cut short by a crash must be retried, so the
    // instance then shows what its process shows.
    if (meta.status === "deleting" && this.#deleting.has(meta.instanceId)) return "deleting";
    if (meta.pid === undefined) {
      // Spawning right now, or a create that died before the process started.
      return this.#creating.has(meta.instanceId) ? "pending" : "stopped";
    }
    const state = await probeProcess({
      pid: meta.pid,
      startTicks: meta.startTicks,
      envMarker: `NSTANCE_INSTANCE_ID=${meta.instanceId}`,
    });
    // A SIGSTOPped agent is a VM that runs but stays silent (a hung VM): the provider still says
    // running, and health checks must find it by its missing reports.
    return state === "running" || state === "stopped" ? "running" : "stopped";
  }

  async #setLbMembership(
    lbName: string | undefined,
    providerInstanceId: string,
    member: boolean,
  ): Promise<void> {
    const run = this.#lbLock.then(async () => {
      const lbs = await this.#readLbFile();
      const names = lbName === undefined ? Object.keys(lbs) : [lbName];
      let changed = false;
      for (const name of names) {
        const set = new Set(lbs[name] ?? []);
        const had = set.has(providerInstanceId);
        if (member === had) continue;
        if (member) set.add(providerInstanceId);
        else set.delete(providerInstanceId);
        lbs[name] = [...set].sort();
        changed = true;
      }
      if (changed) await writeFileAtomic(this.#lbFile, `${JSON.stringify(lbs, null, 2)}\n`);
    });
    this.#lbLock = run.catch(() => undefined);
    await run;
  }

  async #readLbFile(): Promise<LbFile> {
    try {
      return JSON.parse(await readFile(this.#lbFile, "utf8")) as LbFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw this.#fsError("readLoadBalancers", err);
    }
  }

  async #pruneDeletedLogs(): Promise<void> {
    const names = await readdir(this.#deletedDir);
    if (names.length <= this.#deletedLogsKept) return;
    const withTimes = await Promise.all(
      names.map(async (n) => ({ n, mtimeMs: (await stat(join(this.#deletedDir, n))).mtimeMs })),
    );
    withTimes.sort((a, b) => a.mtimeMs - b.mtimeMs);
    const excess = withTimes.slice(0, withTimes.length - this.#deletedLogsKept);
    await Promise.all(excess.map((e) => rm(join(this.#deletedDir, e.n), { force: true })));
  }

  #fsError(op: string, err: unknown): ProviderError {
    return new ProviderError({
      provider: "local",
      op,
      message: `${errorMessage(err)} (state dir ${this.#stateDir})`,
      transient: false,
      cause: err,
    });
  }
}

function checkId(id: string): string {
  if (!SAFE_ID.test(id)) {
    throw new NstanceError(
      "invalid_argument",
      `invalid instance ID for a local instance: ${JSON.stringify(id)}`,
    );
  }
  return id;
}

/** The instance ID from either argument (a record may lack one of them). */
function resolveId(instanceId: string, providerInstanceId: string): string {
  if (instanceId) return checkId(instanceId);
  return checkId(
    providerInstanceId.startsWith(PROVIDER_ID_PREFIX)
      ? providerInstanceId.slice(PROVIDER_ID_PREFIX.length)
      : providerInstanceId,
  );
}

/** Resolves once the process runs; rejects when it could not be started (e.g. ENOENT). */
function spawned(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSpawn = (): void => {
      child.off("error", onError);
      resolve();
    };
    const onError = (err: Error): void => {
      child.off("spawn", onSpawn);
      reject(err);
    };
    child.once("spawn", onSpawn);
    child.once("error", onError);
  });
}

function inheritedEnv(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const k of DEFAULT_LOCAL_INHERITED_ENV) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    // The agent leads its own process group (detached), so -pid reaches its children too.
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

async function readMeta(dir: string): Promise<LocalInstanceMeta | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, "meta.json"), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as LocalInstanceMeta;
  } catch {
    // A torn write cannot happen (atomic rename), so this is a hand-edited file: not ours.
    return undefined;
  }
}

async function writeMeta(dir: string, meta: LocalInstanceMeta): Promise<void> {
  await writeFileAtomic(join(dir, "meta.json"), `${JSON.stringify(meta, null, 2)}\n`);
}

async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}
