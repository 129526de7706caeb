// SPDX-License-Identifier: Apache-2.0
/**
 * Renews the agent's client certificate before it expires (RenewAgentCertificate on the agent
 * channel), so a reconnect, a failover or a restart after `certificates.agent.ttl` still finds a
 * valid certificate. When: renewal-schedule.ts (a third of the lifetime left, or
 * `NSTANCE_CERT_RENEW_BEFORE`). The new certificate must certify the same identity key, name the
 * same instance, chain to ca.crt, be valid now and differ from the current one; it is written to
 * identity.crt atomically, and new connections use it. A failed renewal is retried with backoff
 * until the certificate expires; meanwhile the agent carries on with the certificate it has.
 */
import { X509Certificate } from "node:crypto";
import { Metadata } from "@grpc/grpc-js";
import type { RenewAgentCertificateResponse } from "../protocol/gen/nstance/v1/agent.js";
import { fromGrpcError } from "../protocol/to-grpc-error.js";
import type { BackoffOptions } from "../shared/backoff.js";
import { IllegalStateError, isAbortError, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { runInBackground } from "../shared/run-in-background.js";
import { sleep } from "../shared/sleep.js";
import { agentCertificateInfo, checkAgentCertificate } from "./agent-certificate.js";
import type { AgentChannel } from "./agent-channel.js";
import type { IdentityDir } from "./identity-dir.js";
import { renewalDelayMs } from "./renewal-schedule.js";

/** Deadline of one RenewAgentCertificate call, connection included (reference: 30 s). */
export const DEFAULT_RENEWAL_TIMEOUT_MS = 30_000;
/**
 * Least time between obtaining a certificate and renewing it, so an `NSTANCE_CERT_RENEW_BEFORE`
 * longer than the lifetime cannot turn into a tight loop of renewals.
 */
export const DEFAULT_MIN_RENEWAL_INTERVAL_MS = 1_000;
/**
 * Longest single sleep while waiting: the wait is checked against the wall clock this often, so a
 * suspended VM or a clock step delays a renewal by at most this much.
 */
export const DEFAULT_MAX_SLEEP_MS = 5 * 60_000;
/** Below this many ms between renewals the agent warns that the setting is only for tests. */
const SHORT_RENEWAL_INTERVAL_MS = 60_000;

/** A certificate the renewer obtained. */
export interface RenewedCertificate {
  certificatePem: string;
  /** Serial, lowercase hex. */
  serial: string;
  expiresAt: Date;
}

/** Options for {@link CertificateRenewer}. */
export interface CertificateRenewerOptions {
  /** The agent channel: the call goes to its current client; new connections get the new certificate. */
  channel: Pick<AgentChannel, "client" | "reportFailure" | "updateCertificate">;
  /** Where identity.crt is written. */
  identity: Pick<IdentityDir, "writeCertificate">;
  /** ca.crt: renewed certificates must chain to it. */
  caCertPem: string;
  /** SPKI PEM of identity.key: renewed certificates must certify it. */
  publicKeyPem: string;
  /** The certificate in use (identity.crt). */
  certificatePem: string;
  /** `NSTANCE_CERT_RENEW_BEFORE`; defaults to a third of the lifetime. */
  renewBeforeMs?: number;
  /** Retry backoff; defaults to 30 s doubling up to 10 min (renewal-schedule.ts). */
  retry?: BackoffOptions;
  /** Defaults to {@link DEFAULT_RENEWAL_TIMEOUT_MS}. */
  callTimeoutMs?: number;
  /** Defaults to {@link DEFAULT_MIN_RENEWAL_INTERVAL_MS}. */
  minIntervalMs?: number;
  /** Called after each renewal, once identity.crt holds the new certificate. */
  onRenewed?: (renewed: RenewedCertificate) => void;
  logger: Logger;
}

/** Lifecycle of a {@link CertificateRenewer}. */
export type CertificateRenewerState = "idle" | "running" | "stopped";

/** Keeps the agent's client certificate renewed; see the file comment. */
export class CertificateRenewer {
  readonly #opts: CertificateRenewerOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #state: CertificateRenewerState = "idle";
  #certificatePem: string;
  #renewals = 0;
  #loop: Promise<void> | undefined;

  constructor(opts: CertificateRenewerOptions) {
    if (!opts.channel) throw new TypeError("channel is required");
    if (!opts.identity) throw new TypeError("identity is required");
    if (!opts.caCertPem) throw new TypeError("caCertPem is required");
    if (!opts.publicKeyPem) throw new TypeError("publicKeyPem is required");
    if (!opts.certificatePem) throw new TypeError("certificatePem is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#certificatePem = opts.certificatePem;
  }

  /** Current lifecycle state. */
  get state(): CertificateRenewerState {
    return this.#state;
  }

  /** The certificate in use: the initial one, or the last renewed. */
  get certificatePem(): string {
    return this.#certificatePem;
  }

  /** Successful renewals so far. */
  get renewals(): number {
    return this.#renewals;
  }

  /** Schedules renewals in the background. */
  start(): void {
    if (this.#state !== "idle")
      throw new IllegalStateError(`certificate renewer is ${this.#state}`);
    this.#state = "running";
    this.#loop = runInBackground(
      "certificate_renewal",
      () => this.#run(this.#abort.signal),
      this.#logger,
    );
  }

  /** Stops scheduling and cancels a running call; idempotent. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    this.#abort.abort();
    await this.#loop;
  }

  async #run(signal: AbortSignal): Promise<void> {
    const minIntervalMs = this.#opts.minIntervalMs ?? DEFAULT_MIN_RENEWAL_INTERVAL_MS;
    let obtainedAtMs = Date.now();
    let failures = 0;
    this.#warnIfShort();
    try {
      for (;;) {
        const cert = certificateTimes(this.#certificatePem);
        const delayMs = renewalDelayMs({
          ...cert,
          nowMs: Date.now(),
          failures,
          renewBeforeMs: this.#opts.renewBeforeMs,
          notBeforeMs: obtainedAtMs + minIntervalMs,
          retry: this.#opts.retry,
        });
        if (delayMs === undefined) {
          this.#logger.error(
            "Client certificate expires before it could be renewed; the instance will be replaced",
            { expires_at: new Date(cert.validToMs).toISOString(), failures },
          );
          return;
        }
        if (failures === 0) {
          this.#logger.info("Certificate renewal scheduled", {
            renew_at: new Date(Date.now() + delayMs).toISOString(),
            expires_at: new Date(cert.validToMs).toISOString(),
          });
        }
        await sleepUntil(Date.now() + delayMs, signal);
        try {
          await this.#renewOnce(signal);
          failures = 0;
          obtainedAtMs = Date.now();
        } catch (err) {
          if (signal.aborted) return;
          failures++;
          this.#logger.warn("Certificate renewal failed; retrying", {
            err: fromGrpcError(err).message,
            attempt: failures,
            retry_in_ms: renewalDelayMs({
              ...certificateTimes(this.#certificatePem),
              nowMs: Date.now(),
              failures,
              retry: this.#opts.retry,
            }),
            expires_at: new Date(cert.validToMs).toISOString(),
          });
        }
      }
    } catch (err) {
      if (signal.aborted && isAbortError(err)) return;
      throw err;
    }
  }

  async #renewOnce(signal: AbortSignal): Promise<void> {
    const { channel } = this.#opts;
    const client = channel.client;
    let res: RenewAgentCertificateResponse;
    try {
      res = await new Promise<RenewAgentCertificateResponse>((resolve, reject) => {
        const onAbort = (): void => call.cancel();
        const call = client.renewAgentCertificate(
          {},
          new Metadata(),
          { deadline: Date.now() + (this.#opts.callTimeoutMs ?? DEFAULT_RENEWAL_TIMEOUT_MS) },
          (err, r) => {
            signal.removeEventListener("abort", onAbort);
            if (err) reject(err);
            else resolve(r);
          },
        );
        signal.addEventListener("abort", onAbort, { once: true });
      });
    } catch (err) {
      // A standby or an unreachable server: the streams move on too, and so does the next try.
      if (!signal.aborted) channel.reportFailure(client, err);
      throw err;
    }
    const certificatePem = res.clientCertificatePem.toString("utf8");
    const problem = checkAgentCertificate(
      certificatePem,
      this.#opts.caCertPem,
      this.#opts.publicKeyPem,
      Date.now(),
    );
    if (problem !== undefined) {
      throw new NstanceError(
        "internal",
        `the server returned an unusable certificate (${problem})`,
      );
    }
    const current = agentCertificateInfo(this.#certificatePem);
    const next = agentCertificateInfo(certificatePem);
    if (next.instanceId !== current.instanceId) {
      throw new NstanceError(
        "internal",
        `the server returned a certificate for ${next.instanceId}, not ${current.instanceId}`,
      );
    }
    // Another expiry is fine (a new certificates.agent.ttl may shorten it); the same serial would
    // mean nothing was renewed, and scheduling from it again would only repeat the call.
    const previousSerial = serialOf(this.#certificatePem);
    if (serialOf(certificatePem) === previousSerial) {
      throw new NstanceError("internal", "the server returned the current certificate again");
    }
    await this.#opts.identity.writeCertificate(certificatePem);
    this.#certificatePem = certificatePem;
    channel.updateCertificate(certificatePem);
    this.#renewals++;
    const renewed: RenewedCertificate = {
      certificatePem,
      serial: serialOf(certificatePem),
      expiresAt: next.expiresAt,
    };
    this.#logger.info("Certificate renewed", {
      serial: renewed.serial,
      previous_serial: previousSerial,
      expires_at: renewed.expiresAt.toISOString(),
    });
    this.#opts.onRenewed?.(renewed);
  }

  #warnIfShort(): void {
    const { renewBeforeMs } = this.#opts;
    if (renewBeforeMs === undefined) return;
    const cert = certificateTimes(this.#certificatePem);
    const intervalMs = cert.validToMs - cert.validFromMs - renewBeforeMs;
    if (intervalMs < SHORT_RENEWAL_INTERVAL_MS) {
      this.#logger.warn(
        "NSTANCE_CERT_RENEW_BEFORE leaves less than a minute between renewals; meant for tests only",
        {
          renew_before_ms: renewBeforeMs,
          lifetime_ms: cert.validToMs - cert.validFromMs,
        },
      );
    }
  }
}

/** notBefore and notAfter of a PEM certificate, in unix ms. */
function certificateTimes(pem: string): { validFromMs: number; validToMs: number } {
  const cert = new X509Certificate(pem);
  return { validFromMs: Date.parse(cert.validFrom), validToMs: Date.parse(cert.validTo) };
}

/** The serial of a PEM certificate, lowercase hex. */
function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber.toLowerCase();
}

/** Sleeps until the wall clock reaches `atMs`, in steps of at most {@link DEFAULT_MAX_SLEEP_MS}. */
async function sleepUntil(atMs: number, signal: AbortSignal): Promise<void> {
  for (let left = atMs - Date.now(); left > 0; left = atMs - Date.now()) {
    await sleep(Math.min(left, DEFAULT_MAX_SLEEP_MS), signal);
  }
  signal.throwIfAborted();
}
