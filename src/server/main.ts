// SPDX-License-Identifier: Apache-2.0
/**
 * Composition root of nstance-server, read top to bottom: the health listener first (503), then
 * storage, SQLite and the configuration load (200 from here on), the cluster identity, the election
 * endpoint and the elector; the leader runs the leader-only loops for as long as its term lasts.
 * Every stage registers its stop on one Closer, so shutdown unwinds in reverse order.
 */
import { join } from "node:path";
import { openDatabase } from "../db/database.js";
import { LockfileElector } from "../election/lockfile-elector.js";
import {
  createLeadershipHandler,
  fetchLeaderRecord,
  LEADERSHIP_SHARD_PATH,
} from "../election/peer-endpoint.js";
import { TermFence } from "../election/term-fence.js";
import { type HealthSnapshot, healthHandler } from "../http/health-endpoint.js";
import { HttpServer, splitHostPort } from "../http/http-server.js";
import { serverTlsOptions } from "../pki/tls-options.js";
import type { ErrorEvent, InstanceEvent } from "../protocol/gen/nstance/v1/operator.js";
import { createProvider } from "../providers/create-provider.js";
import {
  type DrainNotifier,
  type ErrorNotifier,
  TenantEvents,
} from "../reconcile/tenant-events.js";
import { Closer } from "../shared/closer.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { runInBackground } from "../shared/run-in-background.js";
import { sleep } from "../shared/sleep.js";
import { createStorage } from "../storage/create-storage.js";
import { effectiveAdvertise, effectiveBinds } from "./advertise.js";
import { AgentService } from "./agent-service/service.js";
import type { TermReconciler } from "./api/api-context.js";
import { startApiServers } from "./api/grpc-servers.js";
import { LeaderOperatorAddresses } from "./api/leader-operator-addresses.js";
import { type LoadedConfig, loadConfigWithRetry } from "./config-loader.js";
import { ConfigStore } from "./config-store.js";
import { detectionSettings, massFailureGuard } from "./detection/detection-settings.js";
import { FailureDetector } from "./detection/failure-detector.js";
import { ServerProbes } from "./health/server-probes.js";
import {
  loadClusterEncryptionKey,
  loadServerIdentity,
  type ServerIdentity,
} from "./identity-stage.js";
import { type ShardManagement, startShardManagement } from "./instances/start-shard-management.js";
import { runLeaderLoops } from "./leader-work.js";
import { MeteredProvider } from "./metrics/metered-provider.js";
import { MeteredStorage } from "./metrics/metered-storage.js";
import { reconcilerMetrics } from "./metrics/reconciler-metrics.js";
import { ServerMetrics } from "./metrics/server-metrics.js";
import { createSecretsStore } from "./secrets/secrets-store.js";
import { ServerRegistry } from "./server-registry.js";
import type { ServerSettings } from "./server-settings.js";
import { ShardAddressBook } from "./shard-address-book.js";

/** How often a standby checks whether the config or groups objects changed (two HEADs). */
export const STANDBY_CONFIG_POLL_MS = 10_000;

/** Where the health endpoint listens before the shard config says otherwise (seed 000). */
export const DEFAULT_HEALTH_BIND = "0.0.0.0:8990";

/** Options for {@link runServer}. */
export interface RunServerOptions {
  logger: Logger;
  version: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Overrides the 1 s / 2 s boot retry delays (tests). */
  loadRetryDelaysMs?: readonly number[];
}

type Phase = "loading" | "failed" | "ready" | "stopping";

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Runs the server until `signal` aborts. A configuration or identity that cannot be loaded after the
 * retries is logged as fatal and the process keeps running with 503 (no exit, so no restart loop).
 * An unusable encryption key throws: the server refuses to start.
 */
export async function runServer(
  settings: ServerSettings,
  opts: RunServerOptions,
  signal: AbortSignal,
): Promise<void> {
  const { logger } = opts;
  const env = opts.env ?? process.env;
  const closer = new Closer();
  const startedAt = Date.now();
  let phase: Phase = "loading";
  let failure: string | undefined;
  let loaded: LoadedConfig | undefined;
  let elector: LockfileElector | undefined;
  let currentConfig = (): LoadedConfig | undefined => loaded;
  // Probes and metrics exist from the first moment; each stage attaches itself as it starts.
  const metrics = new ServerMetrics({
    version: opts.version,
    serverId: settings.id,
    shard: settings.shard,
    processMetrics: true,
  });
  const probes = new ServerProbes({
    component: "nstance-server",
    version: opts.version,
    serverId: settings.id,
    shard: settings.shard,
    startedAt,
    metrics,
    phase: () => ({ phase, ...(failure === undefined ? {} : { failure }) }),
    config: () => currentConfig(),
  });

  const snapshot = (): HealthSnapshot => {
    const election = elector?.status();
    const cfg = currentConfig();
    return {
      ready: phase === "ready",
      ...(phase !== "ready" ? { reason: failure ?? phase } : {}),
      phase,
      server_id: settings.id,
      shard: settings.shard,
      version: opts.version,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      ...(cfg
        ? {
            config: {
              etag: cfg.configState.etag,
              source: cfg.configState.source,
              groups_etag: cfg.groupsState.etag,
              groups: cfg.effective.groups.length,
            },
          }
        : {}),
      ...(election
        ? {
            leadership: {
              role: election.isLeader ? "leader" : "standby",
              state: election.state,
              term: election.term,
              leader_id: election.leader?.id ?? null,
              leader_addr: election.leader?.addr ?? null,
              stats: elector?.stats(),
            },
          }
        : {}),
    };
  };

  const hangUnhealthy = async (what: string, err: unknown): Promise<void> => {
    phase = "failed";
    failure = `${what}: ${errorMessage(err)}`;
    logger.error(`FATAL: ${what} after retries; staying unhealthy (503)`, {
      err: errorMessage(err),
      fatal: true,
    });
    await waitForAbort(signal);
  };

  try {
    // 1. Health listens at once and answers 503 until the configuration is loaded.
    const health = new HttpServer({
      name: "health",
      routes: { "/health": healthHandler(snapshot), ...probes.routes() },
      fallback: healthHandler(snapshot),
      logger,
    });
    await health.listen(settings.bindOverrides.health ?? DEFAULT_HEALTH_BIND);
    closer.add("health listener", () => health.stop());

    // 2. Storage and the local cache.
    const storage = new MeteredStorage({
      storage: await createStorage(
        { kind: settings.storage, bucket: settings.bucket, logger },
        env,
      ),
      metrics,
    });
    const db = openDatabase({ path: join(settings.cachedir, "db", "nstance.db") });
    closer.add("database", () => {
      db.close();
    });
    probes.attach({ storage, db });

    // 3. The atomic configuration load, retried; on final failure hang with 503.
    try {
      loaded = await loadConfigWithRetry(
        {
          storage,
          shard: settings.shard,
          cachedir: settings.cachedir,
          db,
          logger,
          ...(opts.loadRetryDelaysMs ? { retryDelaysMs: opts.loadRetryDelaysMs } : {}),
        },
        signal,
      );
    } catch (err) {
      if (!signal.aborted) await hangUnhealthy("configuration failed to load", err);
      return;
    }
    const config = loaded.config;
    const binds = effectiveBinds(config.server.bind, settings);
    const advertise = effectiveAdvertise(config.server.advertise, config.server.bind, settings);
    if (settings.bindOverrides.health === undefined && binds.health !== DEFAULT_HEALTH_BIND) {
      await health.rebind(binds.health);
    }
    phase = "ready";
    logger.info("Configuration loaded; server healthy", {
      config_etag: loaded.configState.etag,
      config_source: loaded.configState.source,
      groups: loaded.effective.groups.length,
    });

    // 4. Cluster identity (CA, nonce key) and this server's certificate.
    const encryptionKey = await loadClusterEncryptionKey(config, env);
    let identity: ServerIdentity;
    try {
      identity = await loadServerIdentity(
        {
          config,
          storage,
          encryptionKey,
          hosts: [...new Set(Object.values(advertise).map((a) => splitHostPort(a).host))],
          logger,
        },
        signal,
      );
    } catch (err) {
      if (!signal.aborted) await hangUnhealthy("cluster identity failed to load", err);
      return;
    }

    // 5. Heartbeats and the shard election (HTTPS leadership endpoint for peer mode).
    const prefix = settings.prefix;
    const registry = new ServerRegistry({
      storage,
      prefix,
      logger,
      intervalMs: settings.heartbeatIntervalMs,
      ttlMs: settings.heartbeatTtlMs,
      self: () => ({
        id: settings.id,
        shard: settings.shard,
        version: opts.version,
        role: elector?.isLeader() ? "leader" : "standby",
        term: elector?.currentTerm() ?? 0,
        addresses: { ...advertise },
        started_at: new Date(startedAt).toISOString(),
        updated_at: new Date().toISOString(),
      }),
    });
    registry.start();
    closer.add("server heartbeat", () => registry.stop());
    probes.attach({ registry });

    // The infrastructure provider, the config store and the event hubs outlive leadership terms.
    const provider = new MeteredProvider({
      provider: await createProvider(config.shard.infra.provider, {
        options: config.shard.infra.options,
        region: config.shard.infra.region,
        zone: config.shard.infra.zone,
        env,
        logger,
      }),
      metrics,
    });
    closer.add("provider", () => provider.close());
    probes.attach({ provider });
    const configStore = new ConfigStore({
      storage,
      shard: settings.shard,
      cachedir: settings.cachedir,
      db,
      logger,
      initial: loaded,
    });
    currentConfig = () => configStore.current();
    const drainNotifier: DrainNotifier = new TenantEvents<InstanceEvent>();
    const errorNotifier: ErrorNotifier = new TenantEvents<ErrorEvent>();
    let management: ShardManagement | undefined;
    /** The reconciler the Operator and Registration APIs act through during the current term. */
    let termReconciler: TermReconciler | undefined;
    /** The current term's failure detection; lost agent streams are handed to it. */
    let detector: FailureDetector | undefined;

    const electionCfg = config.shard.leaderElection;
    // New agents get every live server's addresses (this one first), so they follow a failover.
    const addressBook = new ShardAddressBook({
      selfId: settings.id,
      own: {
        registration: advertise.registration,
        agent: advertise.agent,
        operator: advertise.operator,
      },
      source: registry,
      intervalMs: settings.heartbeatIntervalMs,
    });
    const leaderLoops = [registry.sweepLoop(), addressBook.refreshLoop()];
    const el = new LockfileElector({
      storage,
      key: `${prefix}leader.json`,
      id: settings.id,
      advertiseAddr: advertise.election,
      frequentIntervalMs: electionCfg.frequentIntervalMs,
      infrequentIntervalMs: electionCfg.infrequentIntervalMs,
      leaderTimeoutMs: electionCfg.leaderTimeoutMs,
      fetchPeer: (addr, sig) => fetchLeaderRecord(addr, { ca: identity.tls.caCertPem }, sig),
      logger,
      onAcquire: async (term, termSignal) => {
        logger.info("Leadership acquired", { term });
        // A new leader reloads config and groups first: a standby's copy may be behind.
        await configStore.refresh(termSignal).catch((err: unknown) => {
          logger.warn("Config reload on leadership failed; keeping the loaded config", {
            err: errorMessage(err),
          });
        });
        await addressBook.refresh(termSignal).catch((err: unknown) => {
          logger.warn(
            "Cannot list the shard's servers; new agents get this server's address only",
            {
              err: errorMessage(err),
            },
          );
        });
        // Rebuild the cache from storage and the provider, then reconcile and collect garbage
        // for as long as the term lasts; a failed rebuild makes the elector resign.
        const m = await startShardManagement({
          term,
          signal: termSignal,
          fence,
          clusterId: config.cluster.id,
          shard: settings.shard,
          prefix,
          db,
          storage,
          configStore,
          provider,
          identity: identity.identity,
          advertise: addressBook,
          logger,
          drainNotifier,
          errorNotifier,
          reconciler: {
            ...reconcilerMetrics(metrics, db, logger),
            guard: () => massFailureGuard(configStore.current().config),
          },
        });
        management = m;
        termReconciler = { term, signal: termSignal, reconciler: m.reconciler };
        // Failure detection (seed 003): lost agent streams and the missed-report sweep.
        const d = new FailureDetector({
          db,
          provider,
          reconciler: m.reconciler,
          settings: () => detectionSettings(configStore.current().config),
          logger,
          errorNotifier,
          connections: agents.connections,
          isCurrent: () => el.isCurrentTerm(term),
          signal: termSignal,
        });
        d.start();
        detector = d;
        try {
          const ctx = { term, signal: termSignal, storage: fence.guardStorage(storage, term) };
          await runLeaderLoops(leaderLoops, ctx, (t) => el.isCurrentTerm(t), logger);
        } finally {
          if (management === m) management = undefined;
          if (termReconciler?.reconciler === m.reconciler) termReconciler = undefined;
          if (detector === d) detector = undefined;
          await d.stop();
          await m.stop();
        }
      },
      onLose: (term, reason) => {
        logger.info("Leadership ended", { term, reason });
      },
    });
    elector = el;
    probes.attach({
      elector: el,
      electionEnabled: electionCfg.enabled,
      leading: () => management,
    });
    const fence = new TermFence({ source: el, logger });
    const electionServer = new HttpServer({
      name: "election",
      tls: serverTlsOptions({ ...identity.tls, requireClientCert: false }),
      routes: { [LEADERSHIP_SHARD_PATH]: createLeadershipHandler(el) },
      logger,
    });
    await electionServer.listen(binds.election);
    closer.add("election listener", () => electionServer.stop());

    // Standbys follow the leader's group writes so their read-only answers stay current.
    const followCtl = new AbortController();
    const following = runInBackground(
      "standby config follow",
      async () => {
        while (!followCtl.signal.aborted) {
          await sleep(STANDBY_CONFIG_POLL_MS, followCtl.signal);
          if (!el.isLeader()) {
            await configStore.refreshIfChanged(followCtl.signal).catch((err: unknown) => {
              logger.debug("Standby config check failed", { err: errorMessage(err) });
            });
          }
        }
      },
      logger,
    );
    closer.add("standby config follow", async () => {
      followCtl.abort();
      await following;
    });

    // 6. The gRPC API on every server: standbys answer reads and refuse writes naming the leader.
    // As `cluster.secrets` says (provider and prefix); validation made sure object-storage has a key.
    const secrets = createSecretsStore(config.cluster.secrets, { storage, encryptionKey, logger });
    // A standby's "not the shard leader" names the leader's Operator address (from its heartbeat).
    const operatorAddresses = new LeaderOperatorAddresses({ source: registry, logger });
    closer.add("leader operator addresses", () => operatorAddresses.stop());
    const apiCtx = {
      clusterId: config.cluster.id,
      shard: settings.shard,
      prefix,
      db,
      storage,
      configStore,
      identity: identity.identity,
      leadership: operatorAddresses.wrap(el),
      secrets,
      reconciler: () => termReconciler,
      drainNotifier,
      errorNotifier,
      logger,
    };
    const agents = new AgentService({
      ctx: apiCtx,
      secrets,
      lbProvider: provider,
      onDisconnect: (e) => detector?.onDisconnect(e),
      onTerminationNotice: (instanceId, notice) => {
        management?.reconciler.noteTerminationNotice(instanceId, {
          ...(notice.action ? { action: notice.action } : {}),
          ...(notice.deadline ? { deadlineAt: notice.deadline.getTime() } : {}),
        });
      },
    });
    agents.start();
    closer.add("agent service", () => agents.stop());
    probes.attach({ agents });
    const api = await startApiServers({
      bind: { registration: binds.registration, operator: binds.operator, agent: binds.agent },
      tls: identity.tls,
      ctx: apiCtx,
      agentService: agents.handlers(),
      // A dead agent or a broken network is found within keepalive time + timeout (seed 003: 30 s).
      agentKeepalive: {
        timeMs: config.shard.failureDetection.keepaliveTimeMs,
        timeoutMs: config.shard.failureDetection.keepaliveTimeoutMs,
      },
      logger,
    });
    // Stopping the listeners lets in-flight calls finish; the agents' long-lived streams are ended
    // at the same time (agents.stop), so the stop takes as long as those calls, not the whole
    // shutdown_timeout (the upper bound).
    closer.add("gRPC API", async () => {
      await Promise.all([api.stop(config.shard.shutdownTimeoutMs), agents.stop()]);
    });
    logger.info("API listening", { ...api.addresses });
    probes.attach({ grpc: { ...api.addresses } });
    if (electionCfg.enabled) {
      el.start();
      // Registered last so it runs first on shutdown: resign before anything else stops.
      closer.add("elector (resign)", () => el.stop());
    } else {
      logger.warn(
        "Shard leader election is disabled; this server must be the only one in its shard",
      );
    }

    await waitForAbort(signal);
  } finally {
    phase = "stopping";
    logger.info("Shutting down");
    await closer.close();
  }
}
