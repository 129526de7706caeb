// SPDX-License-Identifier: Apache-2.0
/**
 * The nstance-agent runtime, composed by hand: identity directory and keys, registration, then
 * the mutual-TLS streams to the agent service (health reports, key requests, file patches) and the
 * client certificate's renewal before it expires, plus the machine-side helpers they read from
 * (metrics sampler, spot notice watcher, file receiver) and the optional `/healthz` endpoint. The
 * agent imports no server code: it runs on every VM.
 */
import { createPublicKey } from "node:crypto";
import type { BackoffOptions } from "../shared/backoff.js";
import { Closer } from "../shared/closer.js";
import { errorMessage, IllegalStateError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { runInBackground } from "../shared/run-in-background.js";
import { agentCertificateInfo } from "./agent-certificate.js";
import { AgentChannel } from "./agent-channel.js";
import type { AgentConfig } from "./agent-config.js";
import { AgentHealthServer } from "./agent-health-server.js";
import { CertificateRenewer } from "./certificate-renewer.js";
import { FileReceiver } from "./file-receiver.js";
import { FileStream } from "./file-stream.js";
import { HealthReporter } from "./health-reporter.js";
import { IdentityDir } from "./identity-dir.js";
import { KeyRequestStream } from "./key-requests.js";
import { KeyStore } from "./key-store.js";
import { machineAddresses } from "./machine-addresses.js";
import { MetricsSampler } from "./metrics/metrics-sampler.js";
import { decodeNoncePayload } from "./nonce-payload.js";
import { type AgentIdentity, ensureRegistered } from "./registration.js";
import { SpotNoticeWatcher } from "./spot-notice.js";

/** Longest delay setTimeout accepts (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options for {@link Agent}. */
export interface AgentOptions {
  config: AgentConfig;
  /** Base logger (component, version); the agent adds `instance_id` once it knows it. */
  logger: Logger;
  /** Reported as the health report's `version`. */
  version: string;
  /** Registration retry backoff after transient failures (tests shorten it). */
  registrationBackoff?: BackoffOptions;
  /** Wait after a rejected/expired/missing nonce, in ms (tests shorten it). */
  rejectedRetryMs?: number;
  /** Stream reconnection backoff; defaults to 5 s … 60 s. */
  streamBackoff?: BackoffOptions;
}

/** Lifecycle of an {@link Agent}. */
export type AgentState = "idle" | "starting" | "registering" | "running" | "stopping" | "stopped";

/** The agent process's long-lived component; see the file comment. */
export class Agent {
  readonly #opts: AgentOptions;
  readonly #config: AgentConfig;
  readonly #identity: IdentityDir;
  readonly #keyStore: KeyStore;
  readonly #receiver: FileReceiver;
  readonly #abort = new AbortController();
  readonly #closer = new Closer();
  readonly #baseLogger: Logger;
  readonly #logger: Logger;
  #currentLogger: Logger;
  #state: AgentState = "idle";
  #instanceId: string | undefined;
  #healthServer: AgentHealthServer | undefined;
  #metrics: MetricsSampler | undefined;
  #spot: SpotNoticeWatcher | undefined;
  #channel: AgentChannel | undefined;
  #reporter: HealthReporter | undefined;
  #keyRequests: KeyRequestStream | undefined;
  #files: FileStream | undefined;
  #renewer: CertificateRenewer | undefined;
  #starting: Promise<void> | undefined;
  #run: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(opts: AgentOptions) {
    if (!opts.config) throw new TypeError("config is required");
    if (!opts.logger) throw new TypeError("logger is required");
    if (!opts.version) throw new TypeError("version is required");
    this.#opts = opts;
    this.#config = opts.config;
    this.#baseLogger = opts.logger;
    // Late-bound, so every part's lines gain instance_id once the agent learns it.
    this.#logger = {
      debug: (msg, attrs) => this.#currentLogger.debug(msg, attrs),
      info: (msg, attrs) => this.#currentLogger.info(msg, attrs),
      warn: (msg, attrs) => this.#currentLogger.warn(msg, attrs),
      error: (msg, attrs) => this.#currentLogger.error(msg, attrs),
      child: (attrs) => this.#currentLogger.child(attrs),
    };
    this.#currentLogger = opts.logger;
    const c = opts.config;
    this.#identity = new IdentityDir({
      dir: c.identityDir,
      fileMode: c.identityFileMode,
      logger: this.#logger,
    });
    this.#keyStore = new KeyStore({
      keysDir: c.keysDir,
      identityDir: c.identityDir,
      keyFileMode: c.keysFileMode,
      identityFileMode: c.identityFileMode,
      logger: this.#logger,
    });
    this.#receiver = new FileReceiver({
      recvDir: c.recvDir,
      identity: this.#identity,
      fileMode: c.recvFileMode,
      logger: this.#logger,
    });
  }

  /** Current lifecycle state. */
  get state(): AgentState {
    return this.#state;
  }

  /** The instance ID, once known (configured, from the nonce, or from the certificate). */
  get instanceId(): string | undefined {
    return this.#instanceId;
  }

  /** Bound address of the `/healthz` endpoint; undefined when it is off. */
  get healthAddress(): string | undefined {
    return this.#healthServer?.address;
  }

  /**
   * Starts the local parts (health endpoint, metrics, spot watcher, patch recovery) and then
   * registers and opens the streams in the background; resolves once the local parts run.
   * Rejects (after cleaning up) when a local part cannot start, e.g. the health port is taken.
   */
  start(): Promise<void> {
    if (this.#state !== "idle") {
      return Promise.reject(new IllegalStateError(`agent is ${this.#state}`));
    }
    this.#state = "starting";
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    const c = this.#config;
    try {
      if (c.healthAddr !== undefined) {
        const server = new AgentHealthServer({ addr: c.healthAddr, logger: this.#logger });
        await server.start();
        this.#healthServer = server;
        this.#closer.add("health_server", () => server.stop());
      }
      await this.#identity.ensure();
      await this.#learnInstanceId();
      this.#logger.info("Starting agent", {
        identity_dir: c.identityDir,
        keys_dir: c.keysDir,
        recv_dir: c.recvDir,
        registration_addrs: c.registrationAddrs,
        agent_addrs: c.agentAddrs,
        metrics_interval_ms: c.metricsIntervalMs,
      });
      try {
        await this.#receiver.recover();
      } catch (err) {
        // Also retried before every patch; a broken recv dir must not stop health reporting.
        this.#logger.error("Cannot recover the recv directory", { err: errorMessage(err) });
      }
      const metrics = new MetricsSampler({ diskPath: c.diskPath, logger: this.#logger });
      await metrics.start();
      this.#metrics = metrics;
      this.#closer.add("metrics", () => metrics.stop());
      const spot = new SpotNoticeWatcher({
        provider: c.provider,
        metadataUrl: c.metadataUrl,
        pollIntervalMs: c.spotPollIntervalMs,
        logger: this.#logger,
      });
      spot.start();
      this.#spot = spot;
      this.#closer.add("spot_notice", () => spot.stop());
    } catch (err) {
      this.#state = "stopped";
      await this.#closer.close().catch((closeErr: unknown) => {
        this.#logger.warn("Cleanup after a failed start failed", { err: errorMessage(closeErr) });
      });
      throw err;
    }
    // A stop() that arrived while starting waits for this and then undoes it.
    if (this.#abort.signal.aborted) return;
    this.#state = "registering";
    this.#run = runInBackground("agent", () => this.#registerAndConnect(), this.#logger);
  }

  /**
   * Stops gracefully: the health stream is half-closed first (so the server records a shutdown,
   * not a crash), then the other streams are cancelled and the local parts stopped. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#abort.abort();
    await this.#starting?.catch(() => undefined);
    this.#state = "stopping";
    await this.#run;
    // The renewer first: a renewal finishing now would re-arm the expiry timer.
    await this.#renewer?.stop();
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    await this.#reporter?.stop();
    await Promise.all([this.#keyRequests?.stop(), this.#files?.stop()]);
    this.#channel?.close();
    try {
      await this.#closer.close();
    } catch (err) {
      this.#logger.warn("Agent shutdown had errors", { err: errorMessage(err) });
    }
    this.#state = "stopped";
    this.#logger.info("Agent stopped");
  }

  async #registerAndConnect(): Promise<void> {
    const c = this.#config;
    const signal = this.#abort.signal;
    const addresses = machineAddresses({ ipv4: c.ipv4, ipv6: c.ipv6, hostname: c.hostname });
    const identity: AgentIdentity = await ensureRegistered(
      {
        identity: this.#identity,
        keyStore: this.#keyStore,
        addrs: c.registrationAddrs,
        ...addresses,
        logger: this.#logger,
        backoff: this.#opts.registrationBackoff,
        rejectedRetryMs: this.#opts.rejectedRetryMs,
      },
      signal,
    );
    if (signal.aborted) return;
    if (c.instanceId !== undefined && c.instanceId !== identity.instanceId) {
      this.#logger.warn("NSTANCE_INSTANCE_ID differs from the certificate CN; using the CN", {
        configured: c.instanceId,
        certificate_cn: identity.instanceId,
      });
    }
    this.#setInstanceId(identity.instanceId);
    this.#logger.info(identity.registered ? "Identity ready" : "Using stored identity", {
      expires_at: identity.expiresAt.toISOString(),
    });
    this.#watchExpiry(identity.expiresAt);

    const channel = new AgentChannel({
      addrs: c.agentAddrs,
      caCertPem: identity.caCertPem,
      certificatePem: identity.certificatePem,
      privateKeyPem: identity.privateKeyPem,
      logger: this.#logger,
    });
    this.#channel = channel;
    const backoff = this.#opts.streamBackoff;
    const files = new FileStream({
      channel,
      receiver: this.#receiver,
      logger: this.#logger,
      onPatch: () => this.#reporter?.reportSoon(),
      backoff,
    });
    const keyRequests = new KeyRequestStream({
      channel,
      instanceId: identity.instanceId,
      keyStore: this.#keyStore,
      logger: this.#logger,
      backoff,
    });
    if (c.metricsIntervalMs > 0 && this.#metrics) {
      this.#reporter = new HealthReporter({
        channel,
        instanceId: identity.instanceId,
        version: this.#opts.version,
        intervalMs: c.metricsIntervalMs,
        sources: {
          metrics: this.#metrics,
          recvDir: c.recvDir,
          identity: this.#identity,
          spot: this.#spot,
          patchError: () => files.patchError,
        },
        logger: this.#logger,
        backoff,
      });
    } else {
      this.#logger.warn("Health reports are off (NSTANCE_METRICS_INTERVAL=0)");
    }
    const renewer = new CertificateRenewer({
      channel,
      identity: this.#identity,
      caCertPem: identity.caCertPem,
      publicKeyPem: createPublicKey(identity.privateKeyPem)
        .export({ type: "spki", format: "pem" })
        .toString(),
      certificatePem: identity.certificatePem,
      renewBeforeMs: c.certRenewBeforeMs,
      logger: this.#logger,
      onRenewed: (renewed) => this.#watchExpiry(renewed.expiresAt),
    });
    this.#files = files;
    this.#keyRequests = keyRequests;
    this.#renewer = renewer;
    this.#reporter?.start();
    keyRequests.start();
    files.start();
    renewer.start();
    this.#state = "running";
    this.#logger.info("Agent running", { agent_addr: channel.addr });
  }

  /**
   * Once the client certificate expires (every renewal failed), every handshake fails. Say so
   * plainly when it happens instead of leaving only a stream of connection errors. Re-armed for
   * each renewed certificate.
   */
  #watchExpiry(expiresAt: Date): void {
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    const inMs = expiresAt.getTime() - Date.now();
    if (inMs > MAX_TIMER_MS) return;
    this.#expiryTimer = setTimeout(
      () => {
        this.#logger.error(
          "Client certificate expired; the agent cannot reach the server until the instance is replaced",
          { expires_at: expiresAt.toISOString() },
        );
      },
      Math.max(0, inMs),
    );
    this.#expiryTimer.unref();
  }

  /** Best effort: names the instance in logs before registration finishes. */
  async #learnInstanceId(): Promise<void> {
    let id = this.#config.instanceId;
    try {
      if (id === undefined) {
        const nonce = await this.#identity.readNonce();
        if (nonce !== undefined) id = decodeNoncePayload(nonce).subject || undefined;
      }
      if (id === undefined) {
        const cert = await this.#identity.readCertificate();
        if (cert !== undefined) id = agentCertificateInfo(cert).instanceId || undefined;
      }
    } catch {
      // Registration reports these files' problems properly; logs just lack the ID until then.
    }
    if (id !== undefined) this.#setInstanceId(id);
  }

  #setInstanceId(id: string): void {
    if (this.#instanceId === id) return;
    this.#currentLogger = this.#baseLogger.child({ instance_id: id });
    this.#instanceId = id;
  }
}
