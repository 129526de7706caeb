// SPDX-License-Identifier: Apache-2.0
/**
 * The Agent service (mutual TLS, role `agent`; only the shard leader serves it): the health
 * stream, key requests, public key submission, file patches and client certificate renewal, a
 * file per RPC. A report is stored
 * first (batched into SQLite); then, off the stream's path, the server pushes missing or drifted
 * files, requests missing keys, hands spot termination notices on, and registers the instance with
 * its load balancers (seed 003 "Health Report Processing", steps 1–6).
 *
 * Wiring: `const agents = new AgentService({...}); agents.start();` then
 * `startApiServers({ ..., agentService: agents.handlers() })`, and `agents.stop()` after the
 * listeners stopped.
 */
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import { recordDecision } from "../../db/decisions-table.js";
import {
  type AgentServiceServer,
  AgentServiceService,
  type FileTransfer,
  type HealthReportRequest,
  type KeyGenerationRequest,
  type TerminationNotice,
} from "../../protocol/gen/nstance/v1/agent.js";
import { errorMessage, IllegalStateError, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ApiContext } from "../api/api-context.js";
import { Authenticator } from "../api/auth.js";
import { SHUTDOWN_MESSAGE, serverStreamHandler, unaryHandler } from "../api/handler.js";
import type { SecretsStore } from "../secrets/secrets-store.js";
import { AgentConnections, type AgentDisconnect } from "./agent-connections.js";
import { AgentKeyCache } from "./agent-key-cache.js";
import { FileDelivery, type FileDeliveryOptions, type InstanceRef } from "./file-delivery.js";
import { reportedState } from "./health-report.js";
import { HealthStore, type HealthStoreOptions } from "./health-store.js";
import { IngestStats } from "./ingest-stats.js";
import { InstanceStreams } from "./instance-streams.js";
import { KeyRequests } from "./key-requests.js";
import { type LbProvider, LbRegistration } from "./lb-registration.js";
import { receiveFiles } from "./receive-files.js";
import { receiveKeyRequests } from "./receive-key-requests.js";
import { renewAgentCertificate } from "./renew-agent-certificate.js";
import { submitHealthReportHandler } from "./submit-health-report.js";
import { submitPublicKeys } from "./submit-public-keys.js";

/** Options for {@link AgentService}. */
export interface AgentServiceOptions {
  /** The API context the other services share (db, storage, config, CA, leadership, logger). */
  ctx: ApiContext;
  /** Where `secret` files come from. */
  secrets: Pick<SecretsStore, "get">;
  /** Load-balancer calls; without it, groups' load balancers are not registered (logged once). */
  lbProvider?: LbProvider;
  /** True while a tenant's load-balancer targets must stay withdrawn (tenant sleep). */
  isTargetRegistrationBlocked?: (tenant: string) => boolean;
  /** A health stream ended: `graceful` (agent shut down) or `lost` (check the instance now). */
  onDisconnect?: (e: AgentDisconnect) => void;
  /** A report carried a new spot/preemption termination notice (once per distinct notice). */
  onTerminationNotice?: (instanceId: string, notice: TerminationNotice) => void;
  /** Reuse the API servers' authenticator (shared identity cache); a new one by default. */
  auth?: Authenticator;
  /** Tuning of the health store (batching, history bounds). */
  health?: Omit<HealthStoreOptions, "db" | "logger" | "stats" | "now">;
  /** Tuning of file delivery. */
  delivery?: Pick<
    FileDeliveryOptions,
    "redeliveryIntervalMs" | "concurrency" | "certRenewFraction"
  >;
  /** Same missing keys are requested again after this long; see key-requests.ts. */
  keyRequestResendMs?: number;
}

/** Lifecycle of an {@link AgentService}. */
export type AgentServiceState = "idle" | "running" | "stopped";

/** The Agent service; see the file comment. */
export class AgentService {
  /** Agents with an open health stream. */
  readonly connections = new AgentConnections();
  /** Ingest counters and latency. */
  readonly stats = new IngestStats();
  /** File delivery (exposed for tests and metrics). */
  readonly delivery: FileDelivery;
  readonly #opts: AgentServiceOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #auth: Authenticator;
  readonly #store: HealthStore;
  readonly #keys: AgentKeyCache;
  readonly #fileStreams = new InstanceStreams<FileTransfer>("ReceiveFiles");
  readonly #keyStreams = new InstanceStreams<KeyGenerationRequest>("ReceiveKeyRequests");
  readonly #keyRequests: KeyRequests;
  readonly #lb: LbRegistration | undefined;
  readonly #notices = new Map<string, string>();
  /** Stop functions of open health streams. */
  readonly #healthStreams = new Set<() => void>();
  /** Instances whose certificate renewal is running. */
  readonly #renewals = { inFlight: new Set<string>() };
  #state: AgentServiceState = "idle";
  #warnedNoLb = false;

  constructor(opts: AgentServiceOptions) {
    if (!opts.ctx) throw new TypeError("ctx is required");
    if (!opts.secrets) throw new TypeError("secrets is required");
    const { ctx } = opts;
    this.#opts = opts;
    this.#logger = ctx.logger;
    this.#now = ctx.now ?? Date.now;
    this.#auth = opts.auth ?? new Authenticator({ now: this.#now });
    this.#store = new HealthStore({
      ...opts.health,
      db: ctx.db,
      logger: ctx.logger,
      stats: this.stats,
      now: this.#now,
    });
    this.#keys = new AgentKeyCache({ db: ctx.db });
    this.delivery = new FileDelivery({
      ...opts.delivery,
      db: ctx.db,
      storage: ctx.storage,
      prefix: ctx.prefix,
      shard: ctx.shard,
      clusterId: ctx.clusterId,
      ca: ctx.identity.ca,
      configStore: ctx.configStore,
      secrets: opts.secrets,
      keys: this.#keys,
      streams: this.#fileStreams,
      logger: ctx.logger,
      now: this.#now,
    });
    this.#keyRequests = new KeyRequests({
      configStore: ctx.configStore,
      keys: this.#keys,
      streams: this.#keyStreams,
      logger: ctx.logger,
      now: this.#now,
      ...(opts.keyRequestResendMs !== undefined
        ? { resendIntervalMs: opts.keyRequestResendMs }
        : {}),
    });
    this.#lb = opts.lbProvider
      ? new LbRegistration({
          db: ctx.db,
          provider: opts.lbProvider,
          configStore: ctx.configStore,
          logger: ctx.logger,
          now: this.#now,
          ...(opts.isTargetRegistrationBlocked
            ? { isTargetRegistrationBlocked: opts.isTargetRegistrationBlocked }
            : {}),
        })
      : undefined;
  }

  /** Current lifecycle state. */
  get state(): AgentServiceState {
    return this.#state;
  }

  /** Starts the health store (batch commits, history pruning). */
  start(): void {
    if (this.#state !== "idle") throw new IllegalStateError(`agent service is ${this.#state}`);
    this.#state = "running";
    this.#store.start();
  }

  /**
   * Ends open health streams (UNAVAILABLE, no disconnect events), commits pending reports and waits
   * for running deliveries and registrations. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    for (const stop of [...this.#healthStreams]) stop();
    const shutdown = new NstanceError("unavailable", SHUTDOWN_MESSAGE);
    this.#fileStreams.closeAll(shutdown);
    this.#keyStreams.closeAll(shutdown);
    await this.#store.stop();
    await Promise.all([this.delivery.stop(), this.#lb?.stop()]);
  }

  /** The grpc-js implementation to pass to `startApiServers({ agentService })`. */
  handlers(): AgentServiceServer & UntypedServiceImplementation {
    const ctx = this.#opts.ctx;
    const logger = this.#logger;
    const caller = (call: Parameters<Authenticator["authorize"]>[0]) =>
      this.#auth.authorize(call, "agent");
    return {
      submitHealthReport: submitHealthReportHandler({
        auth: this.#auth,
        db: ctx.db,
        leadership: ctx.leadership,
        store: this.#store,
        connections: this.connections,
        stats: this.stats,
        logger,
        now: this.#now,
        trackStream: (stop) => {
          this.#healthStreams.add(stop);
          return () => this.#healthStreams.delete(stop);
        },
        onStored: (ref, report) => this.#afterReport(ref, report),
        onDisconnect: (e, c) => this.#disconnected(e, c),
      }),
      submitPublicKeys: unaryHandler(
        { method: AgentServiceService.submitPublicKeys.path, logger },
        async (req, call) =>
          submitPublicKeys(
            {
              db: ctx.db,
              leadership: ctx.leadership,
              keys: this.#keys,
              delivery: this.delivery,
              logger,
              now: this.#now,
            },
            caller(call),
            req,
          ),
      ),
      receiveFiles: serverStreamHandler(
        { method: AgentServiceService.receiveFiles.path, logger },
        (_req, call, signal) =>
          receiveFiles(
            {
              db: ctx.db,
              leadership: ctx.leadership,
              streams: this.#fileStreams,
              delivery: this.delivery,
            },
            caller(call),
            signal,
          ),
      ),
      receiveKeyRequests: serverStreamHandler(
        { method: AgentServiceService.receiveKeyRequests.path, logger },
        (_req, call, signal) =>
          receiveKeyRequests(
            {
              db: ctx.db,
              leadership: ctx.leadership,
              streams: this.#keyStreams,
              keyRequests: this.#keyRequests,
            },
            caller(call),
            signal,
          ),
      ),
      renewAgentCertificate: unaryHandler(
        { method: AgentServiceService.renewAgentCertificate.path, logger },
        async (_req, call, signal) =>
          renewAgentCertificate(ctx, this.#renewals, caller(call), signal),
      ),
    };
  }

  /** Reports waiting for their SQLite commit (beyond a bound, new ones are shed). */
  get queuedReports(): number {
    return this.#store.queued;
  }

  /** Waits until no file delivery of the instance is running (tests). */
  deliveryIdle(instanceId: string): Promise<void> {
    return this.delivery.idle(instanceId);
  }

  /** Steps 2–6 of report processing; each step is cheap when it has nothing to do. */
  #afterReport(ref: InstanceRef, report: HealthReportRequest): void {
    const step = (name: string, fn: () => void) => {
      try {
        fn();
      } catch (err) {
        this.#logger.error("Health report follow-up failed", {
          step: name,
          instance_id: ref.id,
          err: errorMessage(err),
        });
      }
    };
    step("files", () => this.delivery.onReport(ref, reportedState(report)));
    step("keys", () => this.#keyRequests.onReport(ref));
    step("termination_notice", () => this.#terminationNotice(ref, report.terminationNotice));
    step("load_balancers", () => {
      if (this.#lb) this.#lb.onReport(ref);
      else this.#warnNoLb(ref);
    });
  }

  #warnNoLb(ref: InstanceRef): void {
    if (this.#warnedNoLb) return;
    const group = this.#opts.ctx.configStore.group(ref.tenant, ref.groupKey);
    if (!group || group.loadBalancers.length === 0) return;
    this.#warnedNoLb = true;
    this.#logger.warn(
      "Groups list load balancers but no provider is wired; targets are not registered",
    );
  }

  #terminationNotice(ref: InstanceRef, notice: TerminationNotice | undefined): void {
    if (!notice) return;
    const key = `${notice.action}|${notice.deadline?.toISOString() ?? ""}`;
    if (this.#notices.get(ref.id) === key) return;
    this.#notices.set(ref.id, key);
    const deadline = notice.deadline?.toISOString();
    this.#logger.warn("Termination notice reported", {
      instance_id: ref.id,
      action: notice.action,
      deadline,
    });
    recordDecision(this.#opts.ctx.db, {
      instanceId: ref.id,
      decision: "termination_notice",
      reason: notice.action || "terminate",
      evidence: { action: notice.action, ...(deadline ? { deadline } : {}) },
      at: this.#now(),
    });
    this.#opts.onTerminationNotice?.(ref.id, notice);
  }

  #disconnected(e: AgentDisconnect, c: { peer: string; reports: number }): void {
    const log = e.kind === "graceful" ? this.#logger.info : this.#logger.warn;
    log.call(this.#logger, "Agent health stream closed", {
      instance_id: e.instanceId,
      kind: e.kind,
      peer: c.peer,
      reports: c.reports,
    });
    // A decision record, so the instance's history shows why the health logic checked it.
    this.#opts.ctx.db
      .prepare(
        "INSERT INTO decisions (instance_id, at, decision, reason, evidence) VALUES (?, ?, ?, ?, ?)",
      )
      .run(
        e.instanceId,
        e.at,
        "agent_disconnected",
        e.kind,
        JSON.stringify({ peer: c.peer, reports: c.reports }),
      );
    this.delivery.forget(e.instanceId);
    this.#keyRequests.forget(e.instanceId);
    this.#lb?.forget(e.instanceId);
    this.#keys.forget(e.instanceId);
    if (e.kind === "graceful") this.#notices.delete(e.instanceId);
    this.#opts.onDisconnect?.(e);
  }
}
