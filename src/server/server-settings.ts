// SPDX-License-Identifier: Apache-2.0
/**
 * The server process's own settings: the seed's CLI flags, per-server bind overrides and logging.
 * Each setting has one flag and one environment variable; only flags actually given override.
 */
import { Command, CommanderError, Option } from "commander";
import { parseDurationMs } from "../shared/duration.js";
import { NstanceError } from "../shared/errors.js";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../shared/logger.js";

/** Storage backends the server can use (`--storage`). */
export const STORAGE_KINDS = ["s3", "gcs", "file"] as const;
/** One of {@link STORAGE_KINDS}. */
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** The five listeners whose config address can be overridden per server. */
export const BIND_NAMES = ["health", "election", "registration", "operator", "agent"] as const;
/** One of {@link BIND_NAMES}. */
export type BindName = (typeof BIND_NAMES)[number];

/** Default shard key prefix; `{shard}` is replaced by the shard id. */
export const DEFAULT_PREFIX = "shard/{shard}/";
/** Default cache directory (SQLite and config copies). */
export const DEFAULT_CACHEDIR = "./cache";

/** Settings for a running server. */
export interface ServerSettings {
  id: string;
  shard: string;
  storage: StorageKind;
  bucket: string;
  /** With `{shard}` already substituted. */
  prefix: string;
  cachedir: string;
  advertiseHost?: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Bind addresses given by flag or environment; they win over the shard config. */
  bindOverrides: Partial<Record<BindName, string>>;
  /** How often this server writes its heartbeat record (`--heartbeat-interval`). */
  heartbeatIntervalMs: number;
  /** Age after which a heartbeat record is stale (`--heartbeat-ttl`). */
  heartbeatTtlMs: number;
}

/** What the command line asks for. */
export type ServerCommand =
  | { kind: "run"; settings: ServerSettings }
  | { kind: "validate-file"; path: string; logLevel: LogLevel; logFormat: LogFormat }
  | {
      kind: "validate-remote";
      shard: string;
      storage: StorageKind;
      bucket: string;
      prefix: string;
      logLevel: LogLevel;
      logFormat: LogFormat;
    }
  | { kind: "exit"; code: number; stdout?: string; stderr?: string };

/** Error for bad command lines; the binary prints it with the usage hint and exits 2. */
export class UsageError extends NstanceError {
  constructor(message: string) {
    super("invalid_argument", message);
    this.name = "UsageError";
  }
}

/** Environment variable for a flag: `--advertise-host` → `NSTANCE_ADVERTISE_HOST`. */
export function envNameFor(flag: string): string {
  return `NSTANCE_${flag.replace(/^--/, "").replace(/-/g, "_").toUpperCase()}`;
}

function buildProgram(version: string): Command {
  const p = new Command("nstance-server")
    .description("Per-shard control plane: keeps instance groups at their desired size.")
    .helpOption("-h, --help", "Show help")
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .allowExcessArguments(false)
    .option("-v, --debug", "Enable debug logging (same as --log-level debug)", false)
    .option("--version", `Show version information (${version})`, false)
    .option(
      "--validate [path]",
      "Validate configuration and exit (a local file, or the shard's config in storage)",
    )
    .option("--id <id>", "Unique identifier for this server instance in the cluster (required)")
    .option("--shard <shard>", "Unique identifier for the shard the server belongs to (required)")
    .addOption(
      new Option("--storage <kind>", "Object storage provider: s3, gcs, or file (required)"),
    )
    .option("--bucket <bucket>", "Object storage bucket (for file: a directory) (required)")
    .option("--prefix <prefix>", "Key prefix for shard data in the bucket", DEFAULT_PREFIX)
    .option("--cachedir <dir>", "Directory for cache and database files", DEFAULT_CACHEDIR)
    .option("--advertise-host <host>", "Override advertise host for health and election addresses")
    .addOption(
      new Option("--log-level <level>", `Log level: ${LOG_LEVELS.join(", ")}`).default("info"),
    )
    .addOption(
      new Option("--log-format <format>", `Log format: ${LOG_FORMATS.join(", ")}`).default("json"),
    );
  p.option(
    "--heartbeat-interval <duration>",
    "How often this server writes its heartbeat record",
    "5s",
  );
  p.option(
    "--heartbeat-ttl <duration>",
    "Age after which a server heartbeat is stale and removed",
    "30s",
  );
  for (const b of BIND_NAMES) {
    p.option(`--bind-${b} <host:port>`, `Override server.bind.${b} from the shard config`);
  }
  return p;
}

/**
 * Parses argv (without node and script) and the environment into a command. Never exits; usage
 * problems come back as `{kind: "exit", code: 2}` with a one-line reason and the usage hint.
 */
export function parseServerArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  version: string,
): ServerCommand {
  const program = buildProgram(version);
  const usage = (msg: string): ServerCommand => ({
    kind: "exit",
    code: 2,
    stderr: `nstance-server: ${msg}\nRun 'nstance-server --help' for usage.\n`,
  });
  try {
    program.parse([...argv], { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.help") {
        return { kind: "exit", code: 0, stdout: program.helpInformation() };
      }
      return usage(err.message.replace(/^error: /, ""));
    }
    throw err;
  }
  const o = program.opts<Record<string, string | boolean | undefined>>();
  if (o.version) return { kind: "exit", code: 0, stdout: `nstance-server ${version}\n` };

  // A flag given on the command line wins; otherwise the environment; otherwise the default.
  const get = (key: string, flag: string): string | undefined => {
    if (program.getOptionValueSource(key) === "cli") return o[key] as string;
    const fromEnv = env[envNameFor(flag)];
    if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
    return o[key] as string | undefined;
  };

  const logLevel = (o.debug === true ? "debug" : get("logLevel", "--log-level")) as LogLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    return usage(`invalid --log-level "${logLevel}" (valid: ${LOG_LEVELS.join(", ")})`);
  }
  const logFormat = get("logFormat", "--log-format") as LogFormat;
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    return usage(`invalid --log-format "${logFormat}" (valid: ${LOG_FORMATS.join(", ")})`);
  }

  const storage = get("storage", "--storage");
  if (storage !== undefined && !(STORAGE_KINDS as readonly string[]).includes(storage)) {
    return usage(
      `unknown storage kind "${storage}" for --storage (valid: ${STORAGE_KINDS.join(", ")})`,
    );
  }
  const shard = get("shard", "--shard");
  const bucket = get("bucket", "--bucket");
  const prefixTemplate = get("prefix", "--prefix") ?? DEFAULT_PREFIX;

  const requireFlags = (names: Array<[string, string | undefined]>): string | undefined => {
    const missing = names.filter(([, v]) => v === undefined || v === "").map(([n]) => n);
    if (missing.length === 0) return undefined;
    const list = missing.map((n) => `--${n}`).join(", ");
    return `missing required flag${missing.length > 1 ? "s" : ""} ${list}`;
  };

  if (o.validate !== undefined) {
    if (typeof o.validate === "string") {
      return { kind: "validate-file", path: o.validate, logLevel, logFormat };
    }
    const missing = requireFlags([
      ["shard", shard],
      ["storage", storage],
      ["bucket", bucket],
    ]);
    if (missing) return usage(`${missing} (bare --validate fetches the shard config from storage)`);
    return {
      kind: "validate-remote",
      shard: shard!,
      storage: storage as StorageKind,
      bucket: bucket!,
      prefix: prefixTemplate.replaceAll("{shard}", shard!),
      logLevel,
      logFormat,
    };
  }

  const id = get("id", "--id");
  const missing = requireFlags([
    ["id", id],
    ["shard", shard],
    ["storage", storage],
    ["bucket", bucket],
  ]);
  if (missing) return usage(missing);

  const bindOverrides: Partial<Record<BindName, string>> = {};
  for (const b of BIND_NAMES) {
    const key = `bind${b[0]!.toUpperCase()}${b.slice(1)}`;
    const v = get(key, `--bind-${b}`);
    if (v !== undefined) {
      if (
        !/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/.test(v) ||
        Number(v.slice(v.lastIndexOf(":") + 1)) > 65535
      ) {
        return usage(`invalid --bind-${b} "${v}" (want host:port, e.g. 127.0.0.1:8990)`);
      }
      bindOverrides[b] = v;
    }
  }
  const durations: Record<string, number> = {};
  for (const [key, flag] of [
    ["heartbeatInterval", "--heartbeat-interval"],
    ["heartbeatTtl", "--heartbeat-ttl"],
  ] as const) {
    const text = get(key, flag) ?? "";
    const ms = parseDurationMs(text);
    if (ms === undefined || ms <= 0)
      return usage(`invalid ${flag} "${text}" (want a Go duration such as 5s)`);
    durations[key] = ms;
  }
  if (durations.heartbeatTtl! <= durations.heartbeatInterval!) {
    return usage("--heartbeat-ttl must be longer than --heartbeat-interval");
  }
  return {
    kind: "run",
    settings: {
      heartbeatIntervalMs: durations.heartbeatInterval!,
      heartbeatTtlMs: durations.heartbeatTtl!,
      id: id!,
      shard: shard!,
      storage: storage as StorageKind,
      bucket: bucket!,
      prefix: prefixTemplate.replaceAll("{shard}", shard!),
      cachedir: get("cachedir", "--cachedir") ?? DEFAULT_CACHEDIR,
      ...(get("advertiseHost", "--advertise-host")
        ? { advertiseHost: get("advertiseHost", "--advertise-host")! }
        : {}),
      logLevel,
      logFormat,
      bindOverrides,
    },
  };
}
