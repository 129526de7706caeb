// SPDX-License-Identifier: Apache-2.0
/**
 * Spot / preemptible termination notices from the cloud metadata service. On AWS the agent asks
 * `instance-life-cycle` (IMDSv2 token when available) and polls `spot/instance-action`; on Google
 * it asks `scheduling/preemptible` and polls `instance/preempted`. Once a notice is seen it sticks:
 * every later health report carries it.
 */
import { errorMessage, IllegalStateError, isAbortError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { SpotProviderSetting } from "./agent-config.js";

/** Clouds whose spot notices the agent understands. */
export type SpotProvider = Exclude<SpotProviderSetting, "none">;

/** A termination notice, as the health report's `termination_notice` carries it. */
export interface TerminationNotice {
  /** What the provider will do: `terminate`, `stop`, `hibernate`. */
  action: string;
  /** When it will happen, if known. */
  deadline?: Date;
}

/** AWS instance metadata service. */
export const DEFAULT_AWS_METADATA_URL = "http://169.254.169.254";
/** Google Compute Engine metadata server. */
export const DEFAULT_GOOGLE_METADATA_URL = "http://metadata.google.internal";
/** Timeout of one metadata request; the service is link-local, so answers are fast or never. */
export const DEFAULT_METADATA_TIMEOUT_MS = 2_000;
/** Lifetime asked for IMDSv2 session tokens (the AWS maximum, 6 h). */
export const AWS_TOKEN_TTL_SECONDS = 21_600;
/** Google stops a preempted VM about 30 s after announcing it; used as the notice's deadline. */
export const GOOGLE_PREEMPTION_NOTICE_MS = 30_000;
/** Longest wait between retries when an explicitly configured provider's metadata is unreachable. */
const MAX_DETECT_RETRY_MS = 30_000;

/** A cloud's metadata API, as far as spot handling needs it. */
export interface SpotMetadataClient {
  readonly provider: SpotProvider;
  /** Whether this VM is spot/preemptible. Throws when the metadata service cannot be reached. */
  isSpot(signal?: AbortSignal): Promise<boolean>;
  /** The pending termination notice, or undefined when there is none. */
  fetchNotice(signal?: AbortSignal): Promise<TerminationNotice | undefined>;
}

/** Options shared by the metadata clients. */
export interface MetadataClientOptions {
  /** Base URL (scheme://host[:port]) of the metadata service. */
  baseUrl?: string;
  /** Per-request timeout in ms. Defaults to {@link DEFAULT_METADATA_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
}

interface HttpAnswer {
  status: number;
  body: string;
}

async function request(
  url: string,
  init: { method?: string; headers?: Record<string, string> },
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const res = await fetch(url, {
    method: init.method ?? "GET",
    headers: init.headers,
    redirect: "error",
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  return { status: res.status, body: await res.text() };
}

/** Parses the body of AWS `spot/instance-action` (`{"action":"terminate","time":"…Z"}`). */
export function parseAwsInstanceAction(body: string): TerminationNotice {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw new Error("spot/instance-action: body is not JSON");
  }
  const o = (v ?? {}) as { action?: unknown; time?: unknown };
  if (typeof o.action !== "string" || o.action === "") {
    throw new Error("spot/instance-action: no action");
  }
  const notice: TerminationNotice = { action: o.action };
  if (typeof o.time === "string") {
    const t = new Date(o.time);
    if (!Number.isNaN(t.getTime())) notice.deadline = t;
  }
  return notice;
}

/** AWS IMDS client: IMDSv2 session tokens when the service issues them, IMDSv1 otherwise. */
export class AwsMetadataClient implements SpotMetadataClient {
  readonly provider = "aws" as const;
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  #token: { value: string; expiresAtMs: number } | undefined;
  #tokenless = false;

  constructor(opts: MetadataClientOptions = {}) {
    this.#base = (opts.baseUrl ?? DEFAULT_AWS_METADATA_URL).replace(/\/+$/, "");
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_METADATA_TIMEOUT_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** True when `instance-life-cycle` is `spot`; throws when this is not an AWS metadata service. */
  async isSpot(signal?: AbortSignal): Promise<boolean> {
    const r = await this.#get("/latest/meta-data/instance-life-cycle", signal);
    // Every EC2 instance has this key; a 404 means some other cloud's metadata server.
    if (r.status === 404) throw new Error("instance-life-cycle: not found (not AWS)");
    if (r.status !== 200) throw new Error(`instance-life-cycle: HTTP ${r.status}`);
    return r.body.trim() === "spot";
  }

  /** 200 on `spot/instance-action` is a notice; 404 is none. */
  async fetchNotice(signal?: AbortSignal): Promise<TerminationNotice | undefined> {
    const r = await this.#get("/latest/meta-data/spot/instance-action", signal);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`spot/instance-action: HTTP ${r.status}`);
    return parseAwsInstanceAction(r.body);
  }

  async #get(path: string, signal?: AbortSignal): Promise<HttpAnswer> {
    const url = `${this.#base}${path}`;
    const token = await this.#sessionToken(signal);
    const headers: Record<string, string> = token ? { "X-aws-ec2-metadata-token": token } : {};
    const r = await request(url, { headers }, this.#timeoutMs, signal);
    if (r.status !== 401) return r;
    // Token expired early or IMDSv2 became required: get a fresh one and retry once.
    this.#token = undefined;
    this.#tokenless = false;
    const fresh = await this.#sessionToken(signal);
    if (!fresh) return r;
    return request(
      url,
      { headers: { "X-aws-ec2-metadata-token": fresh } },
      this.#timeoutMs,
      signal,
    );
  }

  async #sessionToken(signal?: AbortSignal): Promise<string | undefined> {
    if (this.#tokenless) return undefined;
    if (this.#token && this.#token.expiresAtMs > this.#now()) return this.#token.value;
    let r: HttpAnswer;
    try {
      r = await request(
        `${this.#base}/latest/api/token`,
        {
          method: "PUT",
          headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(AWS_TOKEN_TTL_SECONDS) },
        },
        this.#timeoutMs,
        signal,
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      return undefined;
    }
    if (r.status !== 200 || r.body === "") {
      // An IMDSv1-only service: stop asking until a request is refused for lack of a token.
      this.#tokenless = true;
      return undefined;
    }
    // Renew a minute early so a token never expires between check and use.
    this.#token = { value: r.body, expiresAtMs: this.#now() + (AWS_TOKEN_TTL_SECONDS - 60) * 1000 };
    return r.body;
  }
}

/** Google Compute Engine metadata client. */
export class GoogleMetadataClient implements SpotMetadataClient {
  readonly provider = "google" as const;
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(opts: MetadataClientOptions = {}) {
    this.#base = (opts.baseUrl ?? DEFAULT_GOOGLE_METADATA_URL).replace(/\/+$/, "");
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_METADATA_TIMEOUT_MS;
    this.#now = opts.now ?? Date.now;
  }

  /** True when `scheduling/preemptible` is `TRUE` or the provisioning model is `SPOT`; throws off Google. */
  async isSpot(signal?: AbortSignal): Promise<boolean> {
    const p = await this.#get("/computeMetadata/v1/instance/scheduling/preemptible", signal);
    // Every GCE instance has this key; anything but 200 means this is not Google's server.
    if (p.status !== 200) throw new Error(`scheduling/preemptible: HTTP ${p.status} (not Google)`);
    if (p.body.trim() === "TRUE") return true;
    const m = await this.#get("/computeMetadata/v1/instance/scheduling/provisioning-model", signal);
    return m.status === 200 && m.body.trim() === "SPOT";
  }

  /** `instance/preempted` = `TRUE` is a notice; Google gives no time, so the deadline is now + 30 s. */
  async fetchNotice(signal?: AbortSignal): Promise<TerminationNotice | undefined> {
    const r = await this.#get("/computeMetadata/v1/instance/preempted", signal);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`instance/preempted: HTTP ${r.status}`);
    if (r.body.trim() !== "TRUE") return undefined;
    return { action: "terminate", deadline: new Date(this.#now() + GOOGLE_PREEMPTION_NOTICE_MS) };
  }

  #get(path: string, signal?: AbortSignal): Promise<HttpAnswer> {
    return request(
      `${this.#base}${path}`,
      { headers: { "Metadata-Flavor": "Google" } },
      this.#timeoutMs,
      signal,
    );
  }
}

/** Options for {@link SpotNoticeWatcher}. */
export interface SpotNoticeWatcherOptions {
  /** `NSTANCE_PROVIDER`: ask only this cloud, or `none`; undefined tries AWS, then Google. */
  provider?: SpotProviderSetting;
  /** `NSTANCE_METADATA_URL`: one base URL for whichever cloud is asked. */
  metadataUrl?: string;
  /** `NSTANCE_SPOT_POLL_INTERVAL` in ms; 0 disables watching. Defaults to 2000. */
  pollIntervalMs?: number;
  /** Per-request timeout in ms. Defaults to {@link DEFAULT_METADATA_TIMEOUT_MS}. */
  requestTimeoutMs?: number;
  logger: Logger;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
  /** Replaces the metadata clients (tests). */
  clients?: readonly SpotMetadataClient[];
}

/** Lifecycle of a {@link SpotNoticeWatcher}. */
export type SpotNoticeWatcherState =
  | "idle"
  | "detecting"
  | "watching"
  | "noticed"
  | "disabled"
  | "stopped";

/** Detects spot status, then polls for a termination notice until one arrives or it is stopped. */
export class SpotNoticeWatcher {
  readonly #setting: SpotProviderSetting | undefined;
  readonly #pollIntervalMs: number;
  readonly #logger: Logger;
  readonly #clients: readonly SpotMetadataClient[];
  readonly #abort = new AbortController();
  #state: SpotNoticeWatcherState = "idle";
  #provider: SpotProvider | undefined;
  #notice: TerminationNotice | undefined;
  #loop: Promise<void> | undefined;
  #detected: Promise<void>;
  #resolveDetected: () => void = () => {};

  constructor(opts: SpotNoticeWatcherOptions) {
    if (!opts.logger) throw new TypeError("logger is required");
    this.#setting = opts.provider;
    this.#pollIntervalMs = opts.pollIntervalMs ?? 2_000;
    if (!(this.#pollIntervalMs >= 0)) throw new RangeError("pollIntervalMs must not be negative");
    this.#logger = opts.logger;
    const common = { timeoutMs: opts.requestTimeoutMs, now: opts.now };
    const aws = new AwsMetadataClient({ ...common, baseUrl: opts.metadataUrl });
    const google = new GoogleMetadataClient({ ...common, baseUrl: opts.metadataUrl });
    this.#clients =
      opts.clients ??
      (opts.provider === "aws"
        ? [aws]
        : opts.provider === "google"
          ? [google]
          : opts.provider === "none"
            ? []
            : [aws, google]);
    this.#detected = new Promise((resolve) => {
      this.#resolveDetected = resolve;
    });
  }

  /** Current lifecycle state. */
  get state(): SpotNoticeWatcherState {
    return this.#state;
  }

  /** The spot provider detected, once detection finished; undefined when not on a spot VM. */
  get provider(): SpotProvider | undefined {
    return this.#provider;
  }

  /** The termination notice, once seen (it never goes away); undefined before. */
  current(): TerminationNotice | undefined {
    return this.#notice;
  }

  /** Resolves when detection has finished (watching, disabled, or stopped). */
  whenDetected(): Promise<void> {
    return this.#detected;
  }

  /** Starts detection and polling in the background; returns at once. */
  start(): void {
    if (this.#state !== "idle")
      throw new IllegalStateError(`spot notice watcher is ${this.#state}`);
    this.#state = "detecting";
    this.#loop = this.#run(this.#abort.signal).catch((err: unknown) => {
      if (!isAbortError(err)) {
        this.#logger.error("Spot notice watcher failed", { err: errorMessage(err) });
      }
    });
  }

  /** Stops polling; idempotent. The notice, if any, stays readable. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
    if (this.#state !== "noticed") this.#state = "stopped";
    this.#resolveDetected();
  }

  async #run(signal: AbortSignal): Promise<void> {
    const client = await this.#detect(signal);
    this.#resolveDetected();
    if (!client) return;
    let failing = false;
    for (;;) {
      await sleep(this.#pollIntervalMs, signal);
      try {
        const notice = await client.fetchNotice(signal);
        if (failing)
          this.#logger.info("Metadata service reachable again", { provider: client.provider });
        failing = false;
        if (notice) {
          this.#notice = notice;
          this.#state = "noticed";
          this.#logger.warn("Spot termination notice received", {
            provider: client.provider,
            action: notice.action,
            deadline: notice.deadline?.toISOString(),
          });
          return;
        }
      } catch (err) {
        if (signal.aborted) throw err;
        if (!failing) {
          this.#logger.warn("Cannot poll for spot termination notice", {
            provider: client.provider,
            err: errorMessage(err),
          });
        }
        failing = true;
      }
    }
  }

  async #detect(signal: AbortSignal): Promise<SpotMetadataClient | undefined> {
    if (this.#setting === "none" || this.#clients.length === 0) {
      this.#disable("spot monitoring disabled by NSTANCE_PROVIDER=none");
      return undefined;
    }
    if (this.#pollIntervalMs === 0) {
      this.#disable("spot poll interval is 0");
      return undefined;
    }
    // A provider named explicitly is trusted to exist: keep asking until it answers.
    const retry = this.#setting !== undefined;
    for (let attempt = 0; ; attempt++) {
      for (const client of this.#clients) {
        try {
          if (await client.isSpot(signal)) {
            this.#provider = client.provider;
            this.#state = "watching";
            this.#logger.info("Running on a spot instance; watching for termination notices", {
              provider: client.provider,
              interval_ms: this.#pollIntervalMs,
            });
            return client;
          }
          this.#disable("not a spot instance", client.provider);
          return undefined;
        } catch (err) {
          if (signal.aborted) throw err;
          this.#logger.debug("Metadata service did not answer", {
            provider: client.provider,
            err: errorMessage(err),
          });
        }
      }
      if (!retry) {
        this.#disable("no cloud metadata service answered");
        return undefined;
      }
      const waitMs = Math.min(MAX_DETECT_RETRY_MS, this.#pollIntervalMs * 2 ** attempt);
      if (attempt === 0) {
        this.#logger.warn("Metadata service unreachable; retrying spot detection", {
          provider: this.#setting,
          retry_in_ms: waitMs,
        });
      }
      await sleep(waitMs, signal);
    }
  }

  #disable(reason: string, provider?: SpotProvider): void {
    this.#state = "disabled";
    this.#logger.info("Spot termination monitoring off", { reason, provider });
  }
}
