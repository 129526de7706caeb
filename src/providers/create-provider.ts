// SPDX-License-Identifier: Apache-2.0
/**
 * Builds the provider named by `shard.infra.provider` from `shard.infra.options` and the
 * environment. Each backend is loaded with `await import()` only when chosen, so the cloud SDKs
 * load only where they are used. Option keys are snake_case as in the config file; unknown keys
 * and missing required settings are reported together as one ConfigError.
 */
import { parseDurationMs } from "../shared/duration.js";
import { ConfigError, type ConfigProblem, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import type { FakeProviderOptions } from "./fake/fake-provider.js";
import { PROVIDER_KINDS, type Provider, type ProviderKind } from "./provider.js";

/** Where the local provider keeps instances when neither options nor the caller say. */
export const DEFAULT_LOCAL_STATE_DIR = ".nstance/local-instances";

/** Option keys each backend accepts in `shard.infra.options`. */
export const PROVIDER_OPTION_KEYS: Readonly<Record<ProviderKind, readonly string[]>> = {
  local: ["state_dir", "command", "stop_grace", "deleted_logs_kept"],
  fake: ["create_delay", "delete_delay", "call_latency"],
  aws: ["ec2_endpoint", "elb_endpoint", "min_free_ips", "max_attempts"],
  google: ["project", "base_url", "source_image", "disk_size_gb", "user_data_key"],
  proxmox: ["cloud_init_storage", "vmid_floor"],
};

/** Inputs of {@link createProvider}. */
export interface CreateProviderOptions {
  /** `shard.infra.options`. */
  options?: Readonly<Record<string, unknown>>;
  /** `shard.infra.region`. */
  region?: string;
  /** `shard.infra.zone`. */
  zone?: string;
  /** Environment for credentials and `PROXMOX_*`; defaults to `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  logger?: Logger;
  /** local: instance state directory unless `options.state_dir` is set. */
  stateDir?: string;
  /** local: agent argv, overriding `options.command` (tests use a stand-in). */
  agentCommand?: readonly string[];
  /** fake: settings code can pass but config cannot (a clock, an onCreate hook). */
  fake?: FakeProviderOptions;
}

/**
 * Creates a provider. Throws NstanceError `invalid_argument` for an unknown kind and ConfigError
 * for bad options (paths such as `shard.infra.options.vmid_floor` or `PROXMOX_TOKEN_ID`).
 */
export async function createProvider(
  kind: ProviderKind | (string & {}),
  opts: CreateProviderOptions = {},
): Promise<Provider> {
  if (!PROVIDER_KINDS.includes(kind as ProviderKind)) {
    throw new NstanceError(
      "invalid_argument",
      `unknown provider ${JSON.stringify(kind)} (want one of ${PROVIDER_KINDS.join(", ")})`,
    );
  }
  const k = kind as ProviderKind;
  const env = opts.env ?? process.env;
  const logger = (opts.logger ?? silentLogger).child({ provider: k });
  const o = new OptionReader(k, opts.options ?? {});

  switch (k) {
    case "local": {
      const stateDir = o.string("state_dir") ?? opts.stateDir ?? DEFAULT_LOCAL_STATE_DIR;
      const command = o.stringList("command");
      const stopGraceMs = o.duration("stop_grace");
      const deletedLogsKept = o.integer("deleted_logs_kept", 0);
      o.done();
      const { LocalProvider } = await import("./local/local-provider.js");
      return new LocalProvider({
        stateDir,
        command: opts.agentCommand ?? command,
        stopGraceMs,
        deletedLogsKept,
        region: opts.region,
        zone: opts.zone,
        logger,
      });
    }
    case "fake": {
      const createDelayMs = o.duration("create_delay");
      const deleteDelayMs = o.duration("delete_delay");
      const callLatencyMs = o.duration("call_latency");
      o.done();
      const { FakeProvider } = await import("./fake/fake-provider.js");
      return new FakeProvider({
        createDelayMs,
        deleteDelayMs,
        callLatencyMs,
        region: opts.region,
        zone: opts.zone,
        logger,
        ...opts.fake,
      });
    }
    case "aws": {
      const ec2Endpoint = o.string("ec2_endpoint");
      const elbEndpoint = o.string("elb_endpoint");
      const minFreeIps = o.integer("min_free_ips", 0);
      const maxAttempts = o.integer("max_attempts", 1);
      const region = opts.region || env.AWS_REGION || env.AWS_DEFAULT_REGION;
      if (!region) o.problem("shard.infra.region", "is required for aws (or set AWS_REGION)");
      o.done();
      const accessKeyId = env.AWS_ACCESS_KEY_ID;
      const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
      const { AwsProvider } = await import("./aws/aws-provider.js");
      return new AwsProvider({
        region: region!,
        zone: opts.zone,
        ec2Endpoint,
        elbEndpoint,
        minFreeIps,
        maxAttempts,
        credentials:
          accessKeyId && secretAccessKey
            ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined }
            : undefined,
        logger,
      });
    }
    case "google": {
      const project = o.string("project") ?? (env.GOOGLE_CLOUD_PROJECT || undefined);
      const baseUrl = o.string("base_url");
      const sourceImage = o.string("source_image");
      const diskSizeGb = o.integer("disk_size_gb", 1);
      const userDataKey = o.string("user_data_key");
      if (!project) {
        o.problem(
          "shard.infra.options.project",
          "is required for google (or set GOOGLE_CLOUD_PROJECT)",
        );
      }
      if (!opts.region) o.problem("shard.infra.region", "is required for google");
      if (!opts.zone) o.problem("shard.infra.zone", "is required for google");
      o.done();
      const { GoogleProvider } = await import("./google/google-provider.js");
      return new GoogleProvider({
        project: project!,
        region: opts.region!,
        zone: opts.zone!,
        baseUrl,
        sourceImage,
        diskSizeGb,
        userDataKey,
        logger,
      });
    }
    case "proxmox": {
      const cloudInitStorage = o.string("cloud_init_storage");
      const vmidFloor = o.integer("vmid_floor", 100);
      const tokenId = env.PROXMOX_TOKEN_ID;
      const tokenSecret = env.PROXMOX_TOKEN_SECRET;
      if (!tokenId) o.problem("PROXMOX_TOKEN_ID", "is required for proxmox (user@realm!token)");
      if (!tokenSecret) o.problem("PROXMOX_TOKEN_SECRET", "is required for proxmox");
      o.done();
      const { ProxmoxProvider } = await import("./proxmox/proxmox-provider.js");
      return new ProxmoxProvider({
        apiUrl: env.PROXMOX_API_URL || undefined,
        tokenId: tokenId!,
        tokenSecret: tokenSecret!,
        region: opts.region,
        zone: opts.zone,
        cloudInitStorage,
        vmidFloor,
        logger,
      });
    }
  }
}

/** Reads typed options, collecting every problem for one ConfigError. */
class OptionReader {
  readonly #options: Readonly<Record<string, unknown>>;
  readonly #problems: ConfigProblem[] = [];

  constructor(kind: ProviderKind, options: Readonly<Record<string, unknown>>) {
    this.#options = options;
    const known = PROVIDER_OPTION_KEYS[kind];
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) {
        this.problem(
          this.#path(key),
          `unknown option for the ${kind} provider (known: ${known.join(", ") || "none"})`,
        );
      }
    }
  }

  problem(path: string, message: string): void {
    this.#problems.push({ path, message });
  }

  string(key: string): string | undefined {
    const v = this.#options[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v === "") return this.#bad(key, "must be a non-empty string");
    return v;
  }

  stringList(key: string): string[] | undefined {
    const v = this.#options[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) {
      return this.#bad(key, "must be a non-empty list of strings");
    }
    return v as string[];
  }

  integer(key: string, min: number): number | undefined {
    const v = this.#options[key];
    if (v === undefined) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) < min) {
      return this.#bad(key, `must be an integer ≥ ${min}`);
    }
    return v as number;
  }

  duration(key: string): number | undefined {
    const v = this.#options[key];
    if (v === undefined) return undefined;
    const ms = typeof v === "string" ? parseDurationMs(v) : undefined;
    if (ms === undefined || ms < 0)
      return this.#bad(key, "must be a Go duration such as 250ms or 5s");
    return ms;
  }

  /** Throws the collected problems, if any. */
  done(): void {
    if (this.#problems.length > 0) throw new ConfigError(this.#problems);
  }

  #bad(key: string, message: string): undefined {
    this.problem(this.#path(key), message);
    return undefined;
  }

  #path(key: string): string {
    return `shard.infra.options.${key}`;
  }
}
