// SPDX-License-Identifier: Apache-2.0
/**
 * The three gRPC listeners, each on its own address with TLS 1.3 only: Registration with
 * server-authenticated TLS (anonymous clients), Operator and Agent with mutual TLS against the
 * cluster CA and the client role enforced on every method. Keepalive per reference §3.2: the server
 * pings every connection 20 s after its last ping was answered and drops it when no ack arrives
 * within 10 s, so a dead agent or a broken network is found within 30 s (the Agent listener's
 * timings come from `shard.failure_detection`); messages are limited to 4 MiB.
 */
import {
  Server,
  type ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { parseHostPort } from "../../config/host-port.js";
import { grpcServerCredentials, type Tls13ServerCredentials } from "../../pki/tls-options.js";
import { AgentServiceService } from "../../protocol/gen/nstance/v1/agent.js";
import { OperatorServiceService } from "../../protocol/gen/nstance/v1/operator.js";
import { RegistrationServiceService } from "../../protocol/gen/nstance/v1/registration.js";
import { NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { type RateLimit, RateLimiter } from "../../shared/rate-limiter.js";
import type { ApiContext } from "./api-context.js";
import { Authenticator } from "./auth.js";
import { createOperatorService } from "./operator/service.js";
import {
  DEFAULT_REGISTRATION_RATE_LIMIT,
  rateLimitRegistration,
} from "./registration/registration-rate-limit.js";
import { createRegistrationService } from "./registration/service.js";
import { guardService } from "./role-guard.js";

/** Time after a connection's last answered ping at which the server pings it again. */
export const DEFAULT_KEEPALIVE_TIME_MS = 20_000;
/** How long the server waits for a ping ack before dropping the connection. */
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;
/** Largest request or response message. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The three API listeners' addresses (`host:port`). */
export interface ApiAddresses {
  registration: string;
  operator: string;
  agent: string;
}

/** TLS material of the listeners: the cluster CA, this server's certificate and key (PEM). */
export interface ApiTls {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

/** Options for {@link startApiServers}. */
export interface StartApiServersOptions {
  /** Listen addresses; port 0 picks a free port (see {@link ApiServers.addresses}). */
  bind: ApiAddresses;
  tls: ApiTls;
  ctx: ApiContext;
  logger: Logger;
  /**
   * The Agent service implementation (its issue adds it). Its methods run only for callers with
   * an `agent` certificate. Without it, every Agent RPC answers UNIMPLEMENTED after that check.
   */
  agentService?: UntypedServiceImplementation;
  /** Registrations worked on at once; defaults to DEFAULT_REGISTRATION_CONCURRENCY. */
  registrationConcurrency?: number;
  /** Registration calls per client address; defaults to DEFAULT_REGISTRATION_RATE_LIMIT. */
  registrationRateLimit?: RateLimit;
  /** Shares one identity cache with the agent service; defaults to a new Authenticator. */
  auth?: Authenticator;
  /** Keepalive of the Agent listener (failure detection); defaults to the constants above. */
  agentKeepalive?: KeepaliveSettings;
}

/** Server keepalive timings: a dead peer is found within `timeMs + timeoutMs`. */
export interface KeepaliveSettings {
  /** Ping interval (after the last answered ping). */
  timeMs: number;
  /** How long a ping may go unanswered before the connection is dropped. */
  timeoutMs: number;
}

/** Running API listeners. */
export interface ApiServers {
  /** The bound addresses, with the real port where 0 was asked for. */
  addresses: ApiAddresses;
  /** Serves new connections with a new certificate (renewal); open connections keep theirs. */
  updateTls(tls: ApiTls): void;
  /**
   * Ends open streams (UNAVAILABLE, so clients reconnect), lets in-flight calls finish for up to
   * `graceMs`, then closes every connection. Idempotent.
   */
  stop(graceMs: number): Promise<void>;
}

/** grpc-js server options. grpc-js servers accept client keepalive pings at any rate (≥ 10 s too). */
const SERVER_OPTIONS = {
  "grpc.keepalive_time_ms": DEFAULT_KEEPALIVE_TIME_MS,
  "grpc.keepalive_timeout_ms": DEFAULT_KEEPALIVE_TIMEOUT_MS,
  "grpc.max_receive_message_length": DEFAULT_MAX_MESSAGE_BYTES,
  "grpc.max_send_message_length": DEFAULT_MAX_MESSAGE_BYTES,
};

function bind(server: Server, address: string, creds: ServerCredentials): Promise<string> {
  const hp = parseHostPort(address);
  if (!hp) throw new NstanceError("invalid_argument", `invalid listen address "${address}"`);
  const host = hp.host === "" ? "0.0.0.0" : hp.host;
  const shown = host.includes(":") ? `[${host}]` : host;
  return new Promise((resolve, reject) => {
    server.bindAsync(`${shown}:${hp.port}`, creds, (err, port) => {
      if (err) {
        reject(new NstanceError("unavailable", `cannot listen on ${address}: ${err.message}`));
      } else resolve(`${shown}:${port}`);
    });
  });
}

function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface Listener {
  name: keyof ApiAddresses;
  server: Server;
  creds: Tls13ServerCredentials;
}

/**
 * Starts the Registration, Operator and Agent listeners. Throws (after closing whatever started)
 * when an address cannot be bound.
 */
export async function startApiServers(opts: StartApiServersOptions): Promise<ApiServers> {
  const logger = opts.logger;
  const auth = opts.auth ?? new Authenticator({ ...(opts.ctx.now ? { now: opts.ctx.now } : {}) });
  const stopCtl = new AbortController();
  const mtls = { ...opts.tls, requireClientCert: true };

  const listener = (
    name: keyof ApiAddresses,
    requireClientCert: boolean,
    definition: ServiceDefinition,
    impl: UntypedServiceImplementation,
    keepalive?: KeepaliveSettings,
  ): Listener => {
    const server = new Server(
      keepalive
        ? {
            ...SERVER_OPTIONS,
            "grpc.keepalive_time_ms": keepalive.timeMs,
            "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
          }
        : SERVER_OPTIONS,
    );
    server.addService(definition, impl);
    return {
      name,
      server,
      creds: grpcServerCredentials(requireClientCert ? mtls : { ...mtls, requireClientCert }),
    };
  };

  const listeners: Listener[] = [
    listener(
      "registration",
      false,
      RegistrationServiceService,
      rateLimitRegistration(
        createRegistrationService({
          ctx: opts.ctx,
          ...(opts.registrationConcurrency ? { concurrency: opts.registrationConcurrency } : {}),
        }),
        new RateLimiter({ limit: opts.registrationRateLimit ?? DEFAULT_REGISTRATION_RATE_LIMIT }),
        logger,
      ) as unknown as UntypedServiceImplementation,
    ),
    listener(
      "operator",
      true,
      OperatorServiceService,
      guardService(
        OperatorServiceService,
        createOperatorService({
          ctx: opts.ctx,
          auth,
          stopSignal: stopCtl.signal,
        }) as unknown as UntypedServiceImplementation,
        { role: "operator", auth, logger },
      ),
    ),
    listener(
      "agent",
      true,
      AgentServiceService,
      guardService(AgentServiceService, opts.agentService ?? {}, { role: "agent", auth, logger }),
      opts.agentKeepalive,
    ),
  ];

  let stopping: Promise<void> | undefined;
  const stop = (graceMs: number): Promise<void> => {
    stopping ??= (async () => {
      stopCtl.abort();
      await Promise.all(listeners.map((l) => shutdown(l.server, graceMs)));
      logger.info("API listeners stopped");
    })();
    return stopping;
  };

  const addresses: Partial<ApiAddresses> = {};
  try {
    for (const l of listeners) {
      addresses[l.name] = await bind(l.server, opts.bind[l.name], l.creds);
    }
  } catch (err) {
    await stop(0);
    throw err;
  }
  const bound = addresses as ApiAddresses;
  logger.info("API listening", {
    registration_addr: bound.registration,
    operator_addr: bound.operator,
    agent_addr: bound.agent,
  });
  return {
    addresses: bound,
    updateTls(tls) {
      for (const l of listeners) l.creds.update(tls);
    },
    stop,
  };
}
