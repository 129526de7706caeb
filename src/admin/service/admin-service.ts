// SPDX-License-Identifier: Apache-2.0
/**
 * The admin client layer, shared by the CLI and the admin HTTP API: typed calls to the Operator
 * API of one shard or of every shard (fanned out in parallel), over mutual TLS with the operator
 * identity. Results are plain data with one entry per shard, in `--servers` order; formatting is
 * the caller's business.
 */
import { type ChannelOptions, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { grpcChannelCredentials } from "../../pki/tls-options.js";
import type { Empty } from "../../protocol/gen/google/protobuf/empty.js";
import type {
  CreateInstanceResponse,
  DeleteInstanceResponse,
  GetConfigStatusResponse,
  GetInstanceHistoryResponse,
  GetInstanceStatusResponse,
  GroupConfig,
  GroupStatus,
  InstanceEvent,
  InstanceHistoryEntry,
  InstanceSummary,
  ListGroupsResponse,
  ListInstancesResponse,
  ListSecretsResponse,
  RefreshConfigResponse,
  UpsertGroupResponse,
} from "../../protocol/gen/nstance/v1/operator.js";
import { OperatorServiceClient } from "../../protocol/gen/nstance/v1/operator.js";
import { fromGrpcError } from "../../protocol/to-grpc-error.js";
import type { BackoffOptions } from "../../shared/backoff.js";
import { NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import { CallError, callUnary, type StartUnaryCall } from "./grpc-call.js";
import type { OperatorIdentityPem } from "./operator-identity.js";
import { RemoteError } from "./remote-error.js";
import {
  DEFAULT_RETRY_BACKOFF,
  DEFAULT_RETRY_WINDOW_MS,
  leaderHint,
  nextAttempt,
} from "./retry-policy.js";
import {
  type ShardSelection,
  type ShardServer,
  selectShards,
  shardAddresses,
} from "./shard-servers.js";

/** Time allowed for each RPC when the caller sets none (the reference's 30 s). */
export const DEFAULT_ADMIN_TIMEOUT_MS = 30_000;

/**
 * Channel options of the admin client: a server that refused a connection is dialled again within
 * 2 s (grpc-js would otherwise wait up to 120 s), so a restarted server is found quickly.
 */
export const ADMIN_CHANNEL_OPTIONS: Partial<ChannelOptions> = {
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 2_000,
};

/** A group as the Operator API reports it. */
export interface GroupInfo {
  key: string;
  tenant: string;
  template: string;
  /** Desired size. */
  size: number;
  instanceType: string;
  subnetPool: string;
  vars: Record<string, string>;
  /** Defined in the static config (only some fields may be changed). */
  isStatic: boolean;
  /** Hash of the merged configuration. */
  etag: string;
  /** Active managed instances with a provider ID. */
  actualSize: number;
  /** Their provider IDs, sorted. */
  providerIds: string[];
}

/** The loaded static configuration object of a shard. */
export interface ConfigStatus {
  etag: string;
  lastModified: Date | undefined;
  sizeBytes: number;
}

/** What a config reload changed. */
export interface ConfigRefresh {
  /** True when the config etag changed. */
  updated: boolean;
  prevEtag: string;
  etag: string;
}

/** Fields of a new dynamic group. */
export interface CreateGroupRequest {
  key: string;
  template: string;
  size: number;
  instanceType?: string;
  subnetPool?: string;
  vars?: Record<string, string>;
}

/** A stored secret: its name and size (the value itself is never kept or shown). */
export interface SecretPut {
  name: string;
  sizeBytes: number;
}

/** Fields of an on-demand instance (CreateInstance). */
export interface OnDemandInstanceRequest {
  group: string;
  /** Empty or absent: the server mints one. */
  instanceId?: string;
  instanceType?: string;
  subnetPool?: string;
  vars?: Record<string, string>;
}

/** One instance's status with every decision the server recorded about it. */
export interface InstanceDetails extends GetInstanceStatusResponse {
  /** Oldest first. */
  history: InstanceHistoryEntry[];
}

/** One shard's outcome. `error` is labelled with the shard (and its address for transport errors). */
export type ShardResult<T> =
  | { shard: string; address: string; ok: true; value: T }
  | { shard: string; address: string; ok: false; error: RemoteError };

/** One shard's part of an admin call, run on a client of one of the shard's addresses. */
type ShardOp<T> = (
  client: OperatorServiceClient,
  signal?: AbortSignal,
  server?: ShardServer,
) => Promise<T>;

/** Options for {@link AdminService}. */
export interface AdminServiceOptions {
  /** Every shard's Operator API addresses (`--servers`). */
  servers: readonly ShardServer[];
  /** The operator identity: CA to trust, client key and certificate. */
  identity: OperatorIdentityPem;
  /** Deadline of each RPC. Defaults to {@link DEFAULT_ADMIN_TIMEOUT_MS}. */
  timeoutMs?: number;
  /**
   * How long a call that certainly did not run is retried on the shard's addresses, in all.
   * Defaults to `timeoutMs` (`--timeout`), else DEFAULT_RETRY_WINDOW_MS.
   */
  retryWindowMs?: number;
  /** Pause after each full pass over a shard's addresses; defaults to DEFAULT_RETRY_BACKOFF. */
  retryBackoff?: BackoffOptions;
  /** Extra grpc-js channel options (tests). */
  channelOptions?: Partial<ChannelOptions>;
  logger: Logger;
}

function toGroupInfo(g: GroupStatus): GroupInfo {
  return {
    key: g.key,
    tenant: g.tenant,
    template: g.template,
    size: g.size,
    instanceType: g.instanceType,
    subnetPool: g.subnetPool,
    vars: { ...g.vars },
    isStatic: g.isStatic,
    etag: g.etag,
    actualSize: g.actualSize,
    providerIds: [...g.providerIds],
  };
}

/** Operator API client for a set of shards; call {@link AdminService.stop} when done. */
export class AdminService {
  readonly #servers: readonly ShardServer[];
  readonly #identity: OperatorIdentityPem;
  readonly #timeoutMs: number;
  readonly #channelOptions: Partial<ChannelOptions>;
  readonly #logger: Logger;
  readonly #retryWindowMs: number;
  readonly #retryBackoff: BackoffOptions;
  /** Per client address. */
  readonly #clients = new Map<string, OperatorServiceClient>();
  /** Per shard: the address that last answered a call (tried first next time). */
  readonly #answered = new Map<string, string>();
  #stopped = false;

  constructor(opts: AdminServiceOptions) {
    if (!opts.servers || opts.servers.length === 0) throw new TypeError("servers is required");
    if (!opts.identity) throw new TypeError("identity is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#servers = [...opts.servers];
    this.#identity = opts.identity;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_ADMIN_TIMEOUT_MS;
    this.#retryWindowMs = opts.retryWindowMs ?? opts.timeoutMs ?? DEFAULT_RETRY_WINDOW_MS;
    this.#retryBackoff = opts.retryBackoff ?? DEFAULT_RETRY_BACKOFF;
    this.#channelOptions = opts.channelOptions ?? {};
    this.#logger = opts.logger;
  }

  /** The configured shards, in order. */
  get servers(): readonly ShardServer[] {
    return this.#servers;
  }

  /** Lists the caller tenant's groups on each selected shard. */
  listGroups(selection: ShardSelection, signal?: AbortSignal): Promise<ShardResult<GroupInfo[]>[]> {
    return this.#fanOutReads(selection, (c, s) => this.#list(c, s), signal);
  }

  /** One group on each selected shard; a shard without it fails with `not_found`. */
  groupStatus(
    selection: ShardSelection,
    key: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<GroupInfo>[]> {
    return this.#fanOutReads(selection, (c, s) => this.#find(c, key, s), signal);
  }

  /**
   * Creates a dynamic group on each selected shard. A shard that already has a group with this
   * key fails with `already_exists` and is left unchanged.
   */
  createGroup(
    selection: ShardSelection,
    req: CreateGroupRequest,
    signal?: AbortSignal,
  ): Promise<ShardResult<GroupInfo>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        const groups = await this.#list(c, s);
        if (groups.some((g) => g.key === req.key)) {
          throw new NstanceError(
            "already_exists",
            `group ${req.key} already exists (use "group scale" to resize it)`,
          );
        }
        return this.#upsert(
          c,
          req.key,
          {
            template: req.template,
            size: req.size,
            instanceType: req.instanceType ?? "",
            subnetPool: req.subnetPool ?? "",
            vars: { ...req.vars },
            args: {},
          },
          s,
        );
      },
      signal,
    );
  }

  /**
   * Sets the desired size of an existing group on each selected shard; only `size` is sent, so
   * the rest of the group (static or dynamic) is kept. A shard without the group fails with
   * `not_found` rather than creating a half-specified group.
   */
  scaleGroup(
    selection: ShardSelection,
    key: string,
    size: number,
    signal?: AbortSignal,
  ): Promise<ShardResult<GroupInfo>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        await this.#find(c, key, s);
        return this.#upsert(
          c,
          key,
          { template: "", size, instanceType: "", subnetPool: "", vars: {}, args: {} },
          s,
        );
      },
      signal,
    );
  }

  /** Deletes a dynamic group (or the dynamic overrides of a static one) on each selected shard. */
  deleteGroup(
    selection: ShardSelection,
    key: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<{ key: string }>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        await callUnary<Empty>(
          "DeleteGroup",
          (o, cb) => c.deleteGroup({ key }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { key };
      },
      signal,
    );
  }

  /** The loaded static config object of each selected shard. */
  configStatus(
    selection: ShardSelection,
    signal?: AbortSignal,
  ): Promise<ShardResult<ConfigStatus>[]> {
    return this.#fanOutReads(
      selection,
      async (c, s) => {
        const res = await callUnary<GetConfigStatusResponse>(
          "GetConfigStatus",
          (o, cb) => c.getConfigStatus({}, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { etag: res.etag, lastModified: res.lastModified, sizeBytes: res.size };
      },
      signal,
    );
  }

  /** Makes each selected shard reload its config from storage now. */
  refreshConfig(
    selection: ShardSelection,
    signal?: AbortSignal,
  ): Promise<ShardResult<ConfigRefresh>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        const res = await callUnary<RefreshConfigResponse>(
          "RefreshConfig",
          (o, cb) => c.refreshConfig({}, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { updated: res.updated, prevEtag: res.prevEtag, etag: res.etag };
      },
      signal,
    );
  }

  /**
   * Creates or replaces a cluster secret through each selected shard's leader. The value goes
   * only into the request: it is never logged or returned.
   */
  putSecret(
    selection: ShardSelection,
    name: string,
    value: Buffer,
    signal?: AbortSignal,
  ): Promise<ShardResult<SecretPut>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        await callUnary<Empty>(
          "PutSecret",
          (o, cb) => c.putSecret({ name, value }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { name, sizeBytes: value.length };
      },
      signal,
    );
  }

  /** Names of the cluster secrets, sorted, as each selected shard sees them (never values). */
  listSecrets(selection: ShardSelection, signal?: AbortSignal): Promise<ShardResult<string[]>[]> {
    return this.#fanOutReads(
      selection,
      async (c, s) => {
        const res = await callUnary<ListSecretsResponse>(
          "ListSecrets",
          (o, cb) => c.listSecrets({}, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return [...res.names];
      },
      signal,
    );
  }

  /** Deletes a cluster secret through each selected shard's leader; a missing one succeeds. */
  deleteSecret(
    selection: ShardSelection,
    name: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<{ name: string }>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        await callUnary<Empty>(
          "DeleteSecret",
          (o, cb) => c.deleteSecret({ name }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { name };
      },
      signal,
    );
  }

  /** The caller tenant's instances on each selected shard (of one group if given), oldest first. */
  listInstances(
    selection: ShardSelection,
    group: string | undefined,
    signal?: AbortSignal,
  ): Promise<ShardResult<InstanceSummary[]>[]> {
    return this.#fanOutReads(
      selection,
      async (c, s) => {
        const res = await callUnary<ListInstancesResponse>(
          "ListInstances",
          (o, cb) => c.listInstances({ group: group ?? "" }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return res.instances;
      },
      signal,
    );
  }

  /** One instance's status and history on each selected shard; a shard without it: `not_found`. */
  instanceStatus(
    selection: ShardSelection,
    instanceId: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<InstanceDetails>[]> {
    return this.#fanOutReads(
      selection,
      async (c, s) => {
        const st = await callUnary<GetInstanceStatusResponse>(
          "GetInstanceStatus",
          (o, cb) => c.getInstanceStatus({ instanceId }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        const h = await callUnary<GetInstanceHistoryResponse>(
          "GetInstanceHistory",
          (o, cb) => c.getInstanceHistory({ instanceId }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { ...st, history: h.entries };
      },
      signal,
    );
  }

  /** Creates an on-demand instance through each selected shard's leader; answers its ID. */
  createInstance(
    selection: ShardSelection,
    req: OnDemandInstanceRequest,
    signal?: AbortSignal,
  ): Promise<ShardResult<CreateInstanceResponse>[]> {
    const config = {
      group: req.group,
      template: "",
      instanceType: req.instanceType ?? "",
      subnetPool: req.subnetPool ?? "",
      vars: { ...req.vars },
    };
    return this.#fanOut(
      selection,
      (c, s) =>
        callUnary<CreateInstanceResponse>(
          "CreateInstance",
          (o, cb) =>
            c.createInstance({ instanceId: req.instanceId ?? "", config }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        ),
      signal,
    );
  }

  /** Deletes an instance now, without drain; status `deleted`, `deleting` or `unknown`. */
  deleteInstance(
    selection: ShardSelection,
    instanceId: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<DeleteInstanceResponse>[]> {
    return this.#fanOut(
      selection,
      (c, s) =>
        callUnary<DeleteInstanceResponse>(
          "DeleteInstance",
          (o, cb) => c.deleteInstance({ instanceId }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        ),
      signal,
    );
  }

  /** Tells each selected shard's leader that a draining instance may be deleted now. */
  acknowledgeDrained(
    selection: ShardSelection,
    instanceId: string,
    signal?: AbortSignal,
  ): Promise<ShardResult<{ instanceId: string }>[]> {
    return this.#fanOut(
      selection,
      async (c, s) => {
        await callUnary<Empty>(
          "AcknowledgeDrained",
          (o, cb) => c.acknowledgeDrained({ instanceId }, new Metadata(), o, cb),
          this.#timeoutMs,
          s,
        );
        return { instanceId };
      },
      signal,
    );
  }

  /**
   * Follows the drain notices (WatchInstances) of each selected shard's leader, calling `onEvent`
   * as each arrives, until `signal` aborts (a shard then counts as succeeded) or its stream ends
   * (an error: the server stopped, lost leadership, or was never reachable). No deadline applies.
   */
  watchDrains(
    selection: ShardSelection,
    onEvent: (shard: string, event: InstanceEvent) => void,
    signal?: AbortSignal,
  ): Promise<ShardResult<{ events: number }>[]> {
    return this.#fanOut(
      selection,
      (c, s, server) =>
        new Promise((resolve, reject) => {
          let events = 0;
          const stream = c.watchInstances({}, new Metadata());
          const onAbort = (): void => stream.cancel();
          s?.addEventListener("abort", onAbort, { once: true });
          if (s?.aborted) stream.cancel();
          stream.on("data", (e: InstanceEvent) => {
            events++;
            onEvent(server?.shard ?? "", e);
          });
          stream.on("error", (err: ServiceError) => {
            s?.removeEventListener("abort", onAbort);
            if (s?.aborted && err.code === status.CANCELLED) resolve({ events });
            else reject(new CallError("WatchInstances", fromGrpcError(err)));
          });
          stream.on("end", () => {
            s?.removeEventListener("abort", onAbort);
            resolve({ events });
          });
        }),
      signal,
    );
  }

  /** Closes every connection. Idempotent; later calls fail. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  async #list(c: OperatorServiceClient, signal?: AbortSignal): Promise<GroupInfo[]> {
    const start: StartUnaryCall<ListGroupsResponse> = (o, cb) =>
      c.listGroups({}, new Metadata(), o, cb);
    const res = await callUnary("ListGroups", start, this.#timeoutMs, signal);
    return res.groups.map(toGroupInfo);
  }

  async #find(c: OperatorServiceClient, key: string, signal?: AbortSignal): Promise<GroupInfo> {
    const found = (await this.#list(c, signal)).find((g) => g.key === key);
    if (!found) throw new NstanceError("not_found", `group ${key} not found`);
    return found;
  }

  async #upsert(
    c: OperatorServiceClient,
    key: string,
    config: GroupConfig,
    signal?: AbortSignal,
  ): Promise<GroupInfo> {
    const res = await callUnary<UpsertGroupResponse>(
      "UpsertGroup",
      (o, cb) => c.upsertGroup({ key, config }, new Metadata(), o, cb),
      this.#timeoutMs,
      signal,
    );
    if (!res.group) throw new NstanceError("internal", "server returned no group");
    return toGroupInfo(res.group);
  }

  #client(address: string): OperatorServiceClient {
    if (this.#stopped) throw new NstanceError("cancelled", "admin service is stopped");
    let client = this.#clients.get(address);
    if (!client) {
      client = new OperatorServiceClient(
        address,
        grpcChannelCredentials({
          caCertPem: this.#identity.caCertPem,
          certPem: this.#identity.certPem,
          keyPem: this.#identity.keyPem,
        }),
        { ...ADMIN_CHANNEL_OPTIONS, ...this.#channelOptions },
      );
      this.#clients.set(address, client);
    }
    return client;
  }

  /** Runs `op` against every selected shard in parallel; never rejects for a shard's failure. */
  #fanOut<T>(
    selection: ShardSelection,
    op: ShardOp<T>,
    signal?: AbortSignal,
  ): Promise<ShardResult<T>[]> {
    return this.#acrossShards(selection, op, false, signal);
  }

  /** {@link #fanOut} for an `op` that only reads: retried even when its outcome is unknown. */
  #fanOutReads<T>(
    selection: ShardSelection,
    op: ShardOp<T>,
    signal?: AbortSignal,
  ): Promise<ShardResult<T>[]> {
    return this.#acrossShards(selection, op, true, signal);
  }

  async #acrossShards<T>(
    selection: ShardSelection,
    op: ShardOp<T>,
    readOnly: boolean,
    signal?: AbortSignal,
  ): Promise<ShardResult<T>[]> {
    const targets = selectShards(this.#servers, selection);
    return Promise.all(targets.map((server) => this.#onShard(server, op, readOnly, signal)));
  }

  /**
   * Runs `op` on one shard: first at the address that last answered, then, while the call
   * certainly did not run (no connection, "not the shard leader"), or that only reads, at the
   * shard's other addresses (the one a refusal names first), backing off after each full pass
   * until the retry window ends.
   */
  async #onShard<T>(
    server: ShardServer,
    op: ShardOp<T>,
    readOnly: boolean,
    signal?: AbortSignal,
  ): Promise<ShardResult<T>> {
    const addresses = shardAddresses(server);
    const startedAt = Date.now();
    let index = Math.max(0, addresses.indexOf(this.#answered.get(server.shard) ?? ""));
    for (let attempts = 1; ; attempts++) {
      const address = addresses[index]!;
      try {
        const value = await op(this.#client(address), signal, server);
        this.#answered.set(server.shard, address);
        return { shard: server.shard, address, ok: true, value };
      } catch (err) {
        const cause =
          err instanceof NstanceError
            ? err
            : new NstanceError("internal", String(err), { cause: err });
        const delayMs =
          signal?.aborted || !(cause instanceof CallError)
            ? undefined
            : nextAttempt(cause, {
                attempts,
                addressCount: addresses.length,
                elapsedMs: Date.now() - startedAt,
                windowMs: this.#retryWindowMs,
                backoff: this.#retryBackoff,
                readOnly,
              });
        if (delayMs === undefined) {
          const error = new RemoteError(`shard ${server.shard}`, address, cause, this.#timeoutMs);
          this.#logger.debug("Operator API call failed", {
            shard: server.shard,
            address,
            code: error.code,
            attempts,
            err,
          });
          return { shard: server.shard, address, ok: false, error };
        }
        const hinted = addresses.indexOf(leaderHint(cause.message) ?? "");
        index = hinted >= 0 && hinted !== index ? hinted : (index + 1) % addresses.length;
        this.#logger.debug("Operator API call failed; trying again", {
          shard: server.shard,
          address,
          next_address: addresses[index],
          delay_ms: delayMs,
          err: cause.message,
        });
        if (delayMs > 0) {
          try {
            await sleep(delayMs, signal);
          } catch {
            // Aborted: the next attempt rejects at once with `cancelled`.
          }
        }
      }
    }
  }
}
