// SPDX-License-Identifier: Apache-2.0
/**
 * The agent's settings, read from `NSTANCE_*` environment variables (the reference agent takes no
 * config file). Every problem is collected and reported at once, each naming its variable.
 */
import { isIP } from "node:net";
import { resolve } from "node:path";
import { parseDurationMs } from "../shared/duration.js";
import { ConfigError, type ConfigProblem } from "../shared/errors.js";

/** Default directory for ca.crt, nonce.jwt, identity.key, identity.crt and config.hash. */
export const DEFAULT_IDENTITY_DIR = "/opt/nstance-agent/identity";
/** Default directory for private keys generated on request. */
export const DEFAULT_KEYS_DIR = "/opt/nstance-agent/keys";
/** Default directory for files the server pushes. */
export const DEFAULT_RECV_DIR = "/opt/nstance-agent/recv";
/** Default mode of identity files (`NSTANCE_IDENTITY_MODE`). */
export const DEFAULT_IDENTITY_FILE_MODE = 0o600;
/** Default mode of generated private keys (`NSTANCE_KEYS_MODE`). */
export const DEFAULT_KEYS_FILE_MODE = 0o640;
/** Default mode of received files (`NSTANCE_RECV_MODE`). */
export const DEFAULT_RECV_FILE_MODE = 0o640;
/** Default health report interval (seed 003: 60 s). */
export const DEFAULT_METRICS_INTERVAL_MS = 60_000;
/** Default interval between spot termination notice polls (reference: 2 s). */
export const DEFAULT_SPOT_POLL_INTERVAL_MS = 2_000;
/** Default filesystem whose usage is reported as `disk_used`. */
export const DEFAULT_DISK_PATH = "/";

/** Values of `NSTANCE_PROVIDER`: which metadata service to ask about spot status; `none` disables. */
export const SPOT_PROVIDER_SETTINGS = ["aws", "google", "none"] as const;
/** One of {@link SPOT_PROVIDER_SETTINGS}. */
export type SpotProviderSetting = (typeof SPOT_PROVIDER_SETTINGS)[number];

/** The agent's compiled configuration. Directories are absolute; intervals are in ms. */
export interface AgentConfig {
  /** `NSTANCE_IDENTITY_DIR`. */
  identityDir: string;
  /** `NSTANCE_KEYS_DIR`. */
  keysDir: string;
  /** `NSTANCE_RECV_DIR`. */
  recvDir: string;
  /** `NSTANCE_IDENTITY_MODE` (octal). */
  identityFileMode: number;
  /** `NSTANCE_KEYS_MODE` (octal). */
  keysFileMode: number;
  /** `NSTANCE_RECV_MODE` (octal). */
  recvFileMode: number;
  /** `NSTANCE_SERVER_REGISTRATION_ADDR`: host:port of the server's registration service (the first, when a list is given). */
  registrationAddr: string;
  /**
   * Every address in `NSTANCE_SERVER_REGISTRATION_ADDR`, which may be a comma-separated list of
   * the shard's servers: the agent tries them in order (a standby answers FAILED_PRECONDITION).
   */
  registrationAddrs: string[];
  /** `NSTANCE_SERVER_AGENT_ADDR`: host:port of the server's agent service (the first, when a list is given). */
  agentAddr: string;
  /** Every address in `NSTANCE_SERVER_AGENT_ADDR` (comma-separated list allowed, as above). */
  agentAddrs: string[];
  /** `NSTANCE_INSTANCE_ID` (puidv7); undefined when not set. */
  instanceId: string | undefined;
  /** `NSTANCE_INSTANCE_HOSTNAME`; undefined means the OS hostname. */
  hostname: string | undefined;
  /** `NSTANCE_INSTANCE_IPV4`; undefined means detect from interfaces. */
  ipv4: string | undefined;
  /** `NSTANCE_INSTANCE_IPV6`; undefined means detect from interfaces. */
  ipv6: string | undefined;
  /** `NSTANCE_METRICS_INTERVAL` (alias `NSTANCE_REPORT_INTERVAL`); 0 disables health reports. */
  metricsIntervalMs: number;
  /** `NSTANCE_PROVIDER`; undefined means detect AWS, then Google, from the metadata service. */
  provider: SpotProviderSetting | undefined;
  /** `NSTANCE_METADATA_URL`: base URL of the metadata service (tests serve their own). */
  metadataUrl: string | undefined;
  /** `NSTANCE_SPOT_POLL_INTERVAL`; 0 disables spot termination polling. */
  spotPollIntervalMs: number;
  /** `NSTANCE_HEALTH_ADDR`: host:port for plain-HTTP `GET /healthz`; undefined disables it. */
  healthAddr: string | undefined;
  /** `NSTANCE_METRICS_DISK_PATH`: filesystem reported as `disk_used`. */
  diskPath: string;
  /**
   * `NSTANCE_CERT_RENEW_BEFORE`: renew the client certificate when this much of its lifetime is
   * left; undefined means when a third is left (see renewal-schedule.ts).
   */
  certRenewBeforeMs: number | undefined;
  /** `NSTANCE_DEBUG` = `true` or `1`. */
  debug: boolean;
}

/** Environment as `process.env` provides it. */
export type AgentEnv = Readonly<Record<string, string | undefined>>;

const PUIDV7 = /^[a-z]{3}[0-9a-hjkmnp-tv-z]{26}$/;

/**
 * Builds the agent config from environment variables, applying defaults. Throws one
 * {@link ConfigError} listing every invalid variable (each problem's `path` is the variable name).
 */
export function loadAgentConfig(env: AgentEnv): AgentConfig {
  const problems: ConfigProblem[] = [];
  const bad = (name: string, message: string): void => {
    problems.push({ path: name, message });
  };
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === "" ? undefined : v;
  };

  const dir = (name: string, def: string): string => {
    const v = get(name) ?? def;
    if (v.includes("\0")) bad(name, "contains a NUL byte");
    return resolve(v);
  };
  const mode = (name: string, def: number): number => {
    const v = get(name);
    if (v === undefined) return def;
    if (!/^0?[0-7]{1,3}$/.test(v)) {
      bad(name, `invalid file mode "${v}": want octal permission bits such as 0640`);
      return def;
    }
    return Number.parseInt(v, 8);
  };
  const duration = (names: string[], def: number): number => {
    const name = names.find((n) => get(n) !== undefined);
    if (name === undefined) return def;
    const v = get(name)!;
    const ms = parseDurationMs(v);
    if (ms === undefined) {
      bad(name, `invalid duration "${v}": want a Go duration such as 60s, 1m30s or 500ms`);
      return def;
    }
    if (ms < 0) {
      bad(name, `must not be negative (got "${v}")`);
      return def;
    }
    return ms;
  };
  const addr = (name: string, required: boolean): string | undefined => {
    const v = get(name);
    if (v === undefined) {
      if (required) bad(name, "is required (host:port)");
      return undefined;
    }
    const problem =
      checkHostPort(v) ?? (required && /:0+$/.test(v) ? "port must not be 0" : undefined);
    if (problem) bad(name, `invalid address "${v}": ${problem}`);
    return v;
  };
  const addrList = (name: string): string[] => {
    const v = get(name);
    if (v === undefined) {
      bad(name, "is required (host:port)");
      return [];
    }
    const list = v
      .split(",")
      .map((a) => a.trim())
      .filter((a) => a !== "");
    if (list.length === 0) bad(name, "is required (host:port)");
    for (const a of list) {
      const problem = checkHostPort(a) ?? (/:0+$/.test(a) ? "port must not be 0" : undefined);
      if (problem) bad(name, `invalid address "${a}": ${problem}`);
    }
    return list;
  };
  const ip = (name: string, family: 4 | 6): string | undefined => {
    const v = get(name);
    if (v !== undefined && isIP(v) !== family) bad(name, `"${v}" is not an IPv${family} address`);
    return v;
  };

  const identityDir = dir("NSTANCE_IDENTITY_DIR", DEFAULT_IDENTITY_DIR);
  const keysDir = dir("NSTANCE_KEYS_DIR", DEFAULT_KEYS_DIR);
  const recvDir = dir("NSTANCE_RECV_DIR", DEFAULT_RECV_DIR);
  const identityFileMode = mode("NSTANCE_IDENTITY_MODE", DEFAULT_IDENTITY_FILE_MODE);
  const keysFileMode = mode("NSTANCE_KEYS_MODE", DEFAULT_KEYS_FILE_MODE);
  const recvFileMode = mode("NSTANCE_RECV_MODE", DEFAULT_RECV_FILE_MODE);
  const registrationAddrs = addrList("NSTANCE_SERVER_REGISTRATION_ADDR");
  const agentAddrs = addrList("NSTANCE_SERVER_AGENT_ADDR");
  const healthAddr = addr("NSTANCE_HEALTH_ADDR", false);

  const instanceId = get("NSTANCE_INSTANCE_ID");
  if (instanceId !== undefined && !PUIDV7.test(instanceId)) {
    bad(
      "NSTANCE_INSTANCE_ID",
      `invalid instance ID "${instanceId}": want 3 lowercase letters and 26 lowercase Crockford base32 characters`,
    );
  }
  const hostname = get("NSTANCE_INSTANCE_HOSTNAME");
  if (hostname !== undefined && !isValidHostname(hostname)) {
    bad("NSTANCE_INSTANCE_HOSTNAME", `invalid hostname "${hostname}"`);
  }

  const providerText = get("NSTANCE_PROVIDER")?.toLowerCase();
  let provider: SpotProviderSetting | undefined;
  if (providerText === "gcp") provider = "google";
  else if (providerText !== undefined) {
    if ((SPOT_PROVIDER_SETTINGS as readonly string[]).includes(providerText)) {
      provider = providerText as SpotProviderSetting;
    } else {
      bad(
        "NSTANCE_PROVIDER",
        `unknown provider "${providerText}" (valid: ${SPOT_PROVIDER_SETTINGS.join(", ")})`,
      );
    }
  }

  const metadataUrl = get("NSTANCE_METADATA_URL");
  if (metadataUrl !== undefined) {
    let ok = false;
    try {
      const u = new URL(metadataUrl);
      ok = u.protocol === "http:" || u.protocol === "https:";
    } catch {
      // Reported below as an invalid URL.
    }
    if (!ok)
      bad("NSTANCE_METADATA_URL", `invalid URL "${metadataUrl}": want http(s)://host[:port]`);
  }

  // 0 when unset or invalid (reported by duration()); a zero lead would renew only at expiry.
  const renewBeforeMs = duration(["NSTANCE_CERT_RENEW_BEFORE"], 0);
  const renewBeforeText = get("NSTANCE_CERT_RENEW_BEFORE");
  if (renewBeforeText !== undefined && parseDurationMs(renewBeforeText) === 0) {
    bad("NSTANCE_CERT_RENEW_BEFORE", `must be greater than 0 (got "${renewBeforeText}")`);
  }

  const debugText = get("NSTANCE_DEBUG")?.toLowerCase();
  if (debugText !== undefined && !["true", "false", "1", "0"].includes(debugText)) {
    bad("NSTANCE_DEBUG", `invalid boolean "${debugText}" (valid: true, false, 1, 0)`);
  }

  const config: AgentConfig = {
    identityDir,
    keysDir,
    recvDir,
    identityFileMode,
    keysFileMode,
    recvFileMode,
    registrationAddr: registrationAddrs[0] ?? "",
    registrationAddrs,
    agentAddr: agentAddrs[0] ?? "",
    agentAddrs,
    instanceId,
    hostname,
    ipv4: ip("NSTANCE_INSTANCE_IPV4", 4),
    ipv6: ip("NSTANCE_INSTANCE_IPV6", 6),
    metricsIntervalMs: duration(
      ["NSTANCE_METRICS_INTERVAL", "NSTANCE_REPORT_INTERVAL"],
      DEFAULT_METRICS_INTERVAL_MS,
    ),
    provider,
    metadataUrl: metadataUrl?.replace(/\/+$/, ""),
    spotPollIntervalMs: duration(["NSTANCE_SPOT_POLL_INTERVAL"], DEFAULT_SPOT_POLL_INTERVAL_MS),
    healthAddr,
    diskPath: get("NSTANCE_METRICS_DISK_PATH") ?? DEFAULT_DISK_PATH,
    certRenewBeforeMs: renewBeforeMs > 0 ? renewBeforeMs : undefined,
    debug: debugText === "true" || debugText === "1",
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Returns why `addr` is not `host:port` (IPv6 in brackets; empty host = all interfaces), or undefined. */
export function checkHostPort(addr: string): string | undefined {
  const i = addr.lastIndexOf(":");
  if (i < 0) return "want host:port";
  let host = addr.slice(0, i);
  const portText = addr.slice(i + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return "port must be a number";
  const port = Number(portText);
  if (port > 65535) return "port must be at most 65535";
  if (host.startsWith("[")) {
    if (!host.endsWith("]") || isIP(host.slice(1, -1)) !== 6) return "invalid IPv6 host";
    return undefined;
  }
  if (host.includes(":")) return "IPv6 hosts must be in brackets, e.g. [::1]:8994";
  host = host.trim();
  if (host !== "" && isIP(host) === 0 && !isValidHostname(host)) return `invalid host "${host}"`;
  return undefined;
}

/** RFC 1123 host name (labels of letters, digits and hyphens, at most 253 characters). */
function isValidHostname(name: string): boolean {
  if (name.length > 253) return false;
  return name
    .replace(/\.$/, "")
    .split(".")
    .every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}
