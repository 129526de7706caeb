// SPDX-License-Identifier: Apache-2.0
/**
 * Agent registration: exchanges the registration nonce for a client certificate over
 * server-authenticated TLS (trusting only `ca.crt`), once. An agent that already holds a usable
 * certificate skips it. Transient failures are retried with backoff forever; a nonce the server
 * rejects (or an expired or missing one) is logged as an error and retried slowly, because only
 * an operator can fix it and the agent should pick up a replaced `nonce.jwt` without a restart.
 */
import { type ChannelOptions, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { grpcChannelCredentials } from "../pki/tls-options.js";
import {
  type RegisterAgentRequest,
  type RegisterAgentResponse,
  RegistrationServiceClient,
} from "../protocol/gen/nstance/v1/registration.js";
import { fromGrpcError } from "../protocol/to-grpc-error.js";
import { type BackoffOptions, backoffDelayMs } from "../shared/backoff.js";
import { errorMessage, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import { agentCertificateInfo, checkAgentCertificate } from "./agent-certificate.js";
import type { IdentityDir } from "./identity-dir.js";
import type { KeyStore } from "./key-store.js";
import { decodeNoncePayload, isNonceExpired, type NoncePayload } from "./nonce-payload.js";

/** Deadline of one RegisterAgent call, connection included (reference: 30 s). */
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 30_000;
/** Backoff between attempts after a transient failure (server unreachable, no leader, …). */
export const DEFAULT_REGISTRATION_BACKOFF: BackoffOptions = {
  initialMs: 1_000,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
};
/** Wait before trying again after the nonce was rejected or is missing/expired. */
export const DEFAULT_REJECTED_RETRY_MS = 60_000;

/** What to do after one failed RegisterAgent call, by gRPC status. */
export type RegistrationCallOutcome = "next_server" | "rejected" | "transient";

/**
 * Classifies a RegisterAgent failure: FAILED_PRECONDITION is a standby (try the next server);
 * UNAUTHENTICATED / INVALID_ARGUMENT / PERMISSION_DENIED mean the nonce or key was refused
 * (retrying the same nonce soon cannot help); anything else is transient.
 */
export function classifyRegistrationStatus(code: number): RegistrationCallOutcome {
  switch (code) {
    case status.FAILED_PRECONDITION:
      return "next_server";
    case status.UNAUTHENTICATED:
    case status.INVALID_ARGUMENT:
    case status.PERMISSION_DENIED:
      return "rejected";
    default:
      return "transient";
  }
}

/** An identity the agent can use for mutual TLS. */
export interface AgentIdentity {
  /** The certificate's CN. */
  instanceId: string;
  caCertPem: string;
  certificatePem: string;
  /** PKCS#8 PEM of identity.key; never log it. */
  privateKeyPem: string;
  /** The certificate's notAfter. */
  expiresAt: Date;
  /** True when this call registered; false when a stored certificate was reused. */
  registered: boolean;
}

/** Sends one RegisterAgent request to `addr`; the test seam of {@link ensureRegistered}. */
export type RegisterAgentCall = (
  addr: string,
  caCertPem: string,
  request: RegisterAgentRequest,
  signal: AbortSignal,
) => Promise<RegisterAgentResponse>;

/** Options for {@link ensureRegistered}. */
export interface RegistrationOptions {
  identity: IdentityDir;
  keyStore: KeyStore;
  /** Registration service addresses (`NSTANCE_SERVER_REGISTRATION_ADDR`), tried in order. */
  addrs: readonly string[];
  /** Reported addresses and hostname (configured or detected); empty strings when unknown. */
  ipv4: string;
  ipv6: string;
  hostname: string;
  logger: Logger;
  /** Defaults to {@link DEFAULT_REGISTRATION_BACKOFF}. */
  backoff?: BackoffOptions;
  /** Defaults to {@link DEFAULT_REJECTED_RETRY_MS}. */
  rejectedRetryMs?: number;
  /** Defaults to {@link DEFAULT_REGISTRATION_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Replaces the gRPC call (tests). */
  registerAgent?: RegisterAgentCall;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
}

/** A failure that waits {@link DEFAULT_REJECTED_RETRY_MS} rather than the transient backoff. */
class NeedsOperatorError extends NstanceError {
  constructor(message: string, options?: ErrorOptions) {
    super("precondition_failed", message, options);
    this.name = "NeedsOperatorError";
  }
}

/**
 * Returns a usable identity, registering first when needed. Never gives up: resolves once
 * registered, or rejects only when `signal` aborts.
 */
export async function ensureRegistered(
  opts: RegistrationOptions,
  signal: AbortSignal,
): Promise<AgentIdentity> {
  if (opts.addrs.length === 0) throw new TypeError("addrs must not be empty");
  const backoff = opts.backoff ?? DEFAULT_REGISTRATION_BACKOFF;
  const rejectedRetryMs = opts.rejectedRetryMs ?? DEFAULT_REJECTED_RETRY_MS;
  let transientAttempt = 0;
  for (;;) {
    signal.throwIfAborted();
    try {
      return await registerOnce(opts, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof NeedsOperatorError) {
        transientAttempt = 0;
        opts.logger.error("Cannot register; waiting for the problem to be fixed", {
          err: err.message,
          retry_in_ms: rejectedRetryMs,
        });
        await sleep(rejectedRetryMs, signal);
        continue;
      }
      const waitMs = backoffDelayMs(transientAttempt++, backoff);
      opts.logger.warn("Registration failed; retrying", {
        err: errorMessage(err),
        attempt: transientAttempt,
        retry_in_ms: waitMs,
      });
      await sleep(waitMs, signal);
    }
  }
}

async function registerOnce(
  opts: RegistrationOptions,
  signal: AbortSignal,
): Promise<AgentIdentity> {
  const { identity, logger } = opts;
  const now = opts.now ?? Date.now;
  let caCertPem: string;
  let nonce: string | undefined;
  try {
    caCertPem = await identity.readCaCert();
    nonce = await identity.readNonce();
  } catch (err) {
    // Missing or malformed files written by userdata: nothing the agent can fix by retrying soon.
    throw new NeedsOperatorError(errorMessage(err), { cause: err });
  }
  const key = await opts.keyStore.ensureIdentityKey();
  const stored = await identity.readCertificate();
  if (stored !== undefined) {
    const problem = checkAgentCertificate(stored, caCertPem, key.publicKeyPem, now());
    if (problem === undefined) {
      const info = agentCertificateInfo(stored);
      if (nonce !== undefined) await finishRegistration(identity, nonce, logger);
      return {
        instanceId: info.instanceId,
        caCertPem,
        certificatePem: stored,
        privateKeyPem: key.privateKeyPem,
        expiresAt: info.expiresAt,
        registered: false,
      };
    }
    if (nonce === undefined) {
      throw new NeedsOperatorError(
        `certificate ${identity.certificatePath} is unusable (${problem}) and there is no registration nonce to register again`,
      );
    }
    logger.warn("Stored certificate is unusable; registering again", {
      path: identity.certificatePath,
      reason: problem,
    });
  }
  if (nonce === undefined) {
    throw new NeedsOperatorError(
      `registration nonce ${identity.noncePath} is missing and there is no certificate`,
    );
  }
  let payload: NoncePayload;
  try {
    payload = decodeNoncePayload(nonce);
  } catch (err) {
    throw new NeedsOperatorError(`${identity.noncePath}: ${errorMessage(err)}`, { cause: err });
  }
  if (isNonceExpired(payload, now())) {
    throw new NeedsOperatorError(
      `registration nonce ${identity.noncePath} expired at ${payload.expiresAt?.toISOString()}: ` +
        "the server will refuse it; the instance needs a new nonce (or to be replaced)",
    );
  }

  const request: RegisterAgentRequest = {
    registrationNonceJwt: nonce,
    publicKeyPem: Buffer.from(key.publicKeyPem),
    privateIpv4: opts.ipv4,
    privateIpv6: opts.ipv6,
    hostname: opts.hostname,
  };
  const call = opts.registerAgent ?? grpcRegisterAgent(opts.timeoutMs);
  const failures: string[] = [];
  let allStandby = true;
  let response: RegisterAgentResponse | undefined;
  let usedAddr = "";
  for (const addr of opts.addrs) {
    logger.info("Registering with server", { addr });
    try {
      response = await call(addr, caCertPem, request, signal);
      usedAddr = addr;
      break;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const code = (err as Partial<ServiceError>).code;
      const outcome = typeof code === "number" ? classifyRegistrationStatus(code) : "transient";
      const message = fromGrpcError(err).message;
      if (outcome === "rejected") {
        throw new NeedsOperatorError(`server ${addr} rejected the registration: ${message}`, {
          cause: err,
        });
      }
      if (outcome === "next_server") {
        logger.info("Server cannot register agents (not the shard leader); trying the next", {
          addr,
          reason: message,
        });
      } else {
        allStandby = false;
      }
      failures.push(`${addr}: ${message}`);
    }
  }
  if (response === undefined) {
    throw new NstanceError(
      "unavailable",
      allStandby
        ? `no server is the shard leader (${failures.join("; ")})`
        : `registration failed (${failures.join("; ")})`,
    );
  }

  const certificatePem = response.clientCertificatePem.toString("utf8");
  const problem = checkAgentCertificate(certificatePem, caCertPem, key.publicKeyPem, now());
  if (problem !== undefined) {
    // A server bug or a mismatched CA: retrying with backoff is the best the agent can do.
    throw new NstanceError(
      "internal",
      `server ${usedAddr} returned a certificate that is ${problem}`,
    );
  }
  const info = agentCertificateInfo(certificatePem);
  await identity.writeCertificate(certificatePem);
  if (payload.configHash !== "") await identity.writeConfigHash(payload.configHash);
  await identity.deleteNonce();
  logger.info("Registered", {
    addr: usedAddr,
    certificate_cn: info.instanceId,
    expires_at: info.expiresAt.toISOString(),
    config_hash: payload.configHash,
  });
  if (payload.subject !== "" && payload.subject !== info.instanceId) {
    logger.warn("Certificate CN differs from the nonce subject; using the certificate's", {
      nonce_subject: payload.subject,
      certificate_cn: info.instanceId,
    });
  }
  return {
    instanceId: info.instanceId,
    caCertPem,
    certificatePem,
    privateKeyPem: key.privateKeyPem,
    expiresAt: info.expiresAt,
    registered: true,
  };
}

/**
 * Finishes a registration interrupted after the certificate was stored: records the nonce's
 * config hash unless a file patch already wrote one, then deletes the nonce.
 */
async function finishRegistration(
  identity: IdentityDir,
  nonce: string,
  logger: Logger,
): Promise<void> {
  try {
    const payload = decodeNoncePayload(nonce);
    if (payload.configHash !== "" && (await identity.readConfigHash()) === undefined) {
      await identity.writeConfigHash(payload.configHash);
    }
  } catch (err) {
    logger.warn("Ignoring leftover registration nonce", { err: errorMessage(err) });
  }
  await identity.deleteNonce();
}

/** Channel options for the one-shot registration channel. */
const REGISTRATION_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.enable_retries": 0,
  "grpc.max_receive_message_length": 4 * 1024 * 1024,
};

/** The real RegisterAgent call: a fresh anonymous-TLS channel per attempt, closed afterwards. */
function grpcRegisterAgent(timeoutMs = DEFAULT_REGISTRATION_TIMEOUT_MS): RegisterAgentCall {
  return (addr, caCertPem, request, signal) => {
    const client = new RegistrationServiceClient(
      addr,
      grpcChannelCredentials({ caCertPem }),
      REGISTRATION_CHANNEL_OPTIONS,
    );
    return new Promise<RegisterAgentResponse>((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = client.registerAgent(
        request,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          signal.removeEventListener("abort", onAbort);
          client.close();
          if (err) reject(err);
          else resolve(res);
        },
      );
      signal.addEventListener("abort", onAbort, { once: true });
    });
  };
}
