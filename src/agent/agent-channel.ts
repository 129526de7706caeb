// SPDX-License-Identifier: Apache-2.0
/**
 * The agent's mutual-TLS connection to the agent service: one grpc-js client (one HTTP/2
 * connection) shared by the health, key-request and file streams, with keepalive pings so a
 * dead path is noticed on both ends. With several server addresses it moves to the next one when
 * the current server is a standby (FAILED_PRECONDITION) or unreachable. A call that stays open on
 * a ready connection for {@link DEFAULT_SERVER_REACHED_AFTER_MS} (a standby refuses at once), or
 * that receives a message, proves the server reachable and leading: the channel then tells every
 * stream ({@link AgentChannel.onServerReached}), so those waiting in backoff retry now. A renewed
 * client certificate ({@link AgentChannel.updateCertificate}) is used from the next connection on.
 */
import { type ChannelOptions, connectivityState, type ServiceError, status } from "@grpc/grpc-js";
import { grpcChannelCredentials } from "../pki/tls-options.js";
import { AgentServiceClient } from "../protocol/gen/nstance/v1/agent.js";
import type { Logger } from "../shared/logger.js";

/**
 * Interval between client keepalive pings. The server permits pings every 10 s or more
 * (reference §3.2) and pings itself after 20 s idle.
 */
export const DEFAULT_KEEPALIVE_TIME_MS = 15_000;
/** How long a ping may go unanswered before the connection is considered dead. */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;
/** Longest wait between grpc-js's own reconnection attempts; below the streams' 5 s backoff. */
export const DEFAULT_MAX_RECONNECT_BACKOFF_MS = 5_000;
/**
 * How long a call must stay open on a ready connection before the server counts as reached: a
 * standby refuses within a round trip, so this leaves ample room for a busy server.
 */
export const DEFAULT_SERVER_REACHED_AFTER_MS = 2_000;
/** Largest message accepted from the server (reference: 4 MiB). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** grpc-js channel options of the agent channel. */
export function agentChannelOptions(keepaliveTimeMs = DEFAULT_KEEPALIVE_TIME_MS): ChannelOptions {
  return {
    "grpc.keepalive_time_ms": keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": DEFAULT_KEEPALIVE_TIMEOUT_MS,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.initial_reconnect_backoff_ms": 1_000,
    "grpc.max_reconnect_backoff_ms": DEFAULT_MAX_RECONNECT_BACKOFF_MS,
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
    // The health stream lives for days: retry buffering would only hold its reports in memory.
    "grpc.enable_retries": 0,
  };
}

/** Options for {@link AgentChannel}. */
export interface AgentChannelOptions {
  /** Agent service addresses (`NSTANCE_SERVER_AGENT_ADDR`); the first is used first. */
  addrs: readonly string[];
  caCertPem: string;
  certificatePem: string;
  /** PKCS#8 PEM of identity.key. */
  privateKeyPem: string;
  /** Defaults to {@link DEFAULT_KEEPALIVE_TIME_MS}. */
  keepaliveTimeMs?: number;
  /** Defaults to {@link DEFAULT_SERVER_REACHED_AFTER_MS}. */
  serverReachedAfterMs?: number;
  logger: Logger;
}

/** Handle of one call watched by {@link AgentChannel.watchCall}. */
export interface CallWatch {
  /** The call received a message: the server is reached. */
  received(): void;
  /** The call ended; stops watching (idempotent). */
  end(): void;
}

/**
 * What a stream uses of the channel. Only the client and failure report are required, so a bare
 * fake fits; without the rest the stream sees one address and is never woken early.
 */
export type StreamChannel = Pick<AgentChannel, "client" | "reportFailure"> &
  Partial<Pick<AgentChannel, "addr" | "addrCount" | "onServerReached" | "watchCall">>;

/** Holds the current agent-service client; see the file comment. */
export class AgentChannel {
  readonly #addrs: readonly string[];
  readonly #options: ChannelOptions;
  readonly #caCertPem: string;
  readonly #privateKeyPem: string;
  #credentials: ReturnType<typeof grpcChannelCredentials>;
  readonly #logger: Logger;
  readonly #reachedAfterMs: number;
  readonly #listeners = new Set<(addr: string) => void>();
  #index = 0;
  #client: AgentServiceClient | undefined;
  /** Whether a call on the current client proved the server reached since its last failure. */
  #reached = false;
  #closed = false;

  constructor(opts: AgentChannelOptions) {
    if (opts.addrs.length === 0) throw new TypeError("addrs must not be empty");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#addrs = opts.addrs;
    this.#logger = opts.logger;
    this.#options = agentChannelOptions(opts.keepaliveTimeMs);
    this.#reachedAfterMs = opts.serverReachedAfterMs ?? DEFAULT_SERVER_REACHED_AFTER_MS;
    this.#caCertPem = opts.caCertPem;
    this.#privateKeyPem = opts.privateKeyPem;
    this.#credentials = this.#credentialsFor(opts.certificatePem);
  }

  #credentialsFor(certificatePem: string): ReturnType<typeof grpcChannelCredentials> {
    return grpcChannelCredentials({
      caCertPem: this.#caCertPem,
      certPem: certificatePem,
      keyPem: this.#privateKeyPem,
    });
  }

  /** The address in use. */
  get addr(): string {
    return this.#addrs[this.#index]!;
  }

  /** How many server addresses the channel has. */
  get addrCount(): number {
    return this.#addrs.length;
  }

  /** The client for the current address (created on first use). Throws once closed. */
  get client(): AgentServiceClient {
    if (this.#closed) throw new Error("agent channel is closed");
    this.#client ??= new AgentServiceClient(this.addr, this.#credentials, this.#options);
    return this.#client;
  }

  /**
   * Called by a stream that failed on `client`. When the failure says this server cannot serve the
   * agent (standby, unreachable), the server no longer counts as reached, and when another address
   * exists, later calls go to the next address.
   */
  reportFailure(client: AgentServiceClient, err: unknown): void {
    if (this.#closed || client !== this.#client) return;
    const code = (err as Partial<ServiceError>).code;
    if (code !== status.FAILED_PRECONDITION && code !== status.UNAVAILABLE) return;
    this.#reached = false;
    if (this.#addrs.length < 2) return;
    const from = this.addr;
    this.#index = (this.#index + 1) % this.#addrs.length;
    this.#client = undefined;
    client.close();
    this.#logger.info("Switching agent service address", { from, to: this.addr });
  }

  /**
   * Makes new connections present `certificatePem` (a renewed certificate for the same identity
   * key): the current client is dropped, so the next call opens a connection with it. Calls
   * already running on the old client continue until their owners end them, as after
   * {@link AgentChannel.reportFailure}; their later failures no longer move the channel.
   */
  updateCertificate(certificatePem: string): void {
    if (this.#closed) return;
    this.#credentials = this.#credentialsFor(certificatePem);
    const old = this.#client;
    this.#client = undefined;
    old?.close();
    this.#logger.debug("New connections use the renewed client certificate", { addr: this.addr });
  }

  /**
   * Calls `listener` with the address whenever a stream reaches the server after it was new or
   * had failed (see the file comment); returns the function that unsubscribes.
   */
  onServerReached(listener: (addr: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Watches a call just started on `client`: once it has been open on a ready connection for the
   * reach delay, or {@link CallWatch.received} is called, the server counts as reached.
   */
  watchCall(client: AgentServiceClient): CallWatch {
    const startedAt = Date.now();
    let readySince: number | undefined;
    let done = false;
    const finish = (reached: boolean): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (reached) this.#serverReached(client);
    };
    const check = (): void => {
      let ready = false;
      try {
        ready = client.getChannel().getConnectivityState(false) === connectivityState.READY;
      } catch {
        // A closed client: the call ends soon.
      }
      if (!ready) {
        readySince = undefined;
        return;
      }
      readySince ??= Date.now();
      if (Date.now() - Math.max(startedAt, readySince) >= this.#reachedAfterMs) finish(true);
    };
    const timer = setInterval(check, Math.max(1, Math.floor(this.#reachedAfterMs / 4)));
    timer.unref();
    return { received: () => finish(true), end: () => finish(false) };
  }

  #serverReached(client: AgentServiceClient): void {
    if (this.#closed || client !== this.#client || this.#reached) return;
    this.#reached = true;
    const addr = this.addr;
    this.#logger.info("Reached agent service", { addr });
    for (const listener of [...this.#listeners]) listener(addr);
  }

  /** Closes the client; idempotent. Calls already started run on until their owners end them. */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#client?.close();
    this.#client = undefined;
  }
}
