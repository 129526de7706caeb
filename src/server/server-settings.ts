// SPDX-License-Identifier: Apache-2.0
/**
 * The server process's own settings: the seed's CLI flags, per-server bind overrides, heartbeats and
 * logging. One schema ({@link SETTINGS_SCHEMA}) defines them all, so every flag has a key in the
 * optional JSONC settings file (`--config`) and an `NSTANCE_*` environment variable. Precedence, low
 * to high: built-in defaults < settings file < environment < flags. Only flags actually given
 * override, so a flag given with its default value still wins over the file.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { checkSchema } from "../config/check-schema.js";
import { locateProblems, parseJsonc } from "../config/parse-jsonc.js";
import {
  bool,
  duration,
  hostPort,
  type ObjectNode,
  obj,
  oneOf,
  type SchemaNode,
  str,
} from "../config/schema-dsl.js";
import { formatDurationMs, parseDurationMs } from "../shared/duration.js";
import { type ConfigProblem, formatConfigProblem, NstanceError } from "../shared/errors.js";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../shared/logger.js";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TTL_MS } from "./server-registry.js";

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
/** Default log level. */
export const DEFAULT_LOG_LEVEL: LogLevel = "info";
/** Default log format (seed 004: JSON, so every line is machine-readable). */
export const DEFAULT_LOG_FORMAT: LogFormat = "json";
/** Environment variable naming the settings file when `--config` is not given. */
export const CONFIG_ENV = "NSTANCE_CONFIG";

/**
 * The settings file schema: one key per flag (`bind.health` ↔ `--bind-health`). Defaults here are
 * the built-in defaults of the flags too.
 */
export const SETTINGS_SCHEMA: ObjectNode = obj(
  "nstance-server settings file (`--config`, JSONC). Every key matches a flag; the environment and flags given on the command line override it.",
  {
    id: str("Unique identifier for this server instance in the cluster (required).", {
      minLength: 1,
    }),
    shard: str("Unique identifier for the shard the server belongs to (required).", {
      minLength: 1,
    }),
    storage: oneOf("Object storage provider: s3, gcs, or file (required).", STORAGE_KINDS),
    bucket: str("Object storage bucket; for file storage, a directory (required).", {
      minLength: 1,
    }),
    prefix: str("Key prefix for shard data in the bucket; `{shard}` is replaced by the shard id.", {
      default: DEFAULT_PREFIX,
    }),
    cachedir: str("Directory for cache and database files.", {
      default: DEFAULT_CACHEDIR,
      minLength: 1,
    }),
    advertise_host: str("Override advertise host for health and election addresses."),
    debug: bool("Enable debug logging (same as log_level debug).", { default: false }),
    log_level: oneOf("Log level: debug, info, warn, or error.", LOG_LEVELS, {
      default: DEFAULT_LOG_LEVEL,
    }),
    log_format: oneOf("Log format: json or text.", LOG_FORMATS, { default: DEFAULT_LOG_FORMAT }),
    heartbeat_interval: duration("How often this server writes its heartbeat record.", {
      min: "positive",
      default: formatDurationMs(DEFAULT_HEARTBEAT_INTERVAL_MS),
    }),
    heartbeat_ttl: duration("Age after which a server heartbeat is stale and removed.", {
      min: "positive",
      default: formatDurationMs(DEFAULT_HEARTBEAT_TTL_MS),
    }),
    bind: obj(
      "Per-server listen addresses; they win over `server.bind` of the shard config.",
      Object.fromEntries(
        BIND_NAMES.map((b) => [b, hostPort(`Override server.bind.${b} from the shard config.`)]),
      ),
    ),
  },
  { allowSchemaKey: true },
);

/** One setting: its key in the file, its flag, its environment variable and its schema node. */
export interface SettingSpec {
  /** Dotted key in the settings file (`log_level`, `bind.health`). */
  key: string;
  /** `--log-level`. */
  flag: string;
  /** `NSTANCE_LOG_LEVEL`. */
  env: string;
  node: SchemaNode;
}

/** Environment variable for a flag: `--advertise-host` → `NSTANCE_ADVERTISE_HOST`. */
export function envNameFor(flag: string): string {
  return `NSTANCE_${flag.replace(/^--/, "").replace(/-/g, "_").toUpperCase()}`;
}

function collectSpecs(node: ObjectNode, prefix: readonly string[]): SettingSpec[] {
  const out: SettingSpec[] = [];
  for (const [name, child] of Object.entries(node.fields)) {
    const path = [...prefix, name];
    if (child.type === "object") {
      out.push(...collectSpecs(child, path));
      continue;
    }
    const flag = `--${path.join("-").replaceAll("_", "-")}`;
    out.push({ key: path.join("."), flag, env: envNameFor(flag), node: child });
  }
  return out;
}

/** Every setting, in schema order: the flags, file keys and variables are all derived from it. */
export const SETTING_SPECS: readonly SettingSpec[] = collectSpecs(SETTINGS_SCHEMA, []);

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
  /** Bind addresses given by flag, environment or settings file; they win over the shard config. */
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

const PLACEHOLDERS: Readonly<Record<string, string>> = {
  storage: "kind",
  cachedir: "dir",
  advertise_host: "host",
  log_level: "level",
  log_format: "format",
  heartbeat_interval: "duration",
  heartbeat_ttl: "duration",
};

function placeholder(spec: SettingSpec): string {
  if (spec.key.startsWith("bind.")) return "host:port";
  return PLACEHOLDERS[spec.key] ?? spec.key;
}

function buildProgram(version: string): { program: Command; attrs: Map<string, string> } {
  const p = new Command("nstance-server")
    .description("Per-shard control plane: keeps instance groups at their desired size.")
    .helpOption("-h, --help", "Show help")
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .allowExcessArguments(false)
    .option("--version", `Show version information (${version})`, false)
    .option(
      "--validate [path]",
      "Validate configuration and exit (a local file, or the shard's config in storage)",
    )
    .option(
      "--config <file>",
      `JSONC settings file with a key for every flag below (env ${CONFIG_ENV})`,
    );
  const attrs = new Map<string, string>();
  for (const spec of SETTING_SPECS) {
    const flags =
      spec.node.type === "boolean"
        ? `${spec.key === "debug" ? "-v, " : ""}${spec.flag}`
        : `${spec.flag} <${placeholder(spec)}>`;
    const opt = new Option(flags, `${spec.node.doc} (env ${spec.env}, key ${spec.key})`);
    // The default is shown in --help only; values are read from the CLI source alone.
    if (spec.node.default !== undefined) opt.default(spec.node.default);
    p.addOption(opt);
    attrs.set(spec.key, opt.attributeName());
  }
  return { program: p, attrs };
}

/** Where a setting's value came from, lowest precedence first. */
export const SETTING_SOURCES = ["default", "file", "env", "flag"] as const;
/** One of {@link SETTING_SOURCES}. */
export type SettingSource = (typeof SETTING_SOURCES)[number];

/** A resolved setting value. */
export interface ResolvedSetting {
  value: unknown;
  source: SettingSource;
}

function hintFor(node: SchemaNode): string {
  switch (node.type) {
    case "boolean":
      return "want true or false";
    case "duration":
      return "want a Go duration greater than 0, such as 5s";
    case "string":
      if (node.enum) return `valid: ${node.enum.join(", ")}`;
      if (node.format === "host-port") return "want host:port, e.g. 127.0.0.1:8990";
      return "must not be empty";
    default:
      return "invalid value";
  }
}

function parseEnvValue(node: SchemaNode, text: string): unknown {
  if (node.type !== "boolean") return text;
  if (/^(true|1|yes)$/i.test(text)) return true;
  if (/^(false|0|no)$/i.test(text)) return false;
  return text;
}

function getPath(v: unknown, key: string): unknown {
  let cur = v;
  for (const part of key.split(".")) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/**
 * Reads and checks a settings file. Returns the values present in it by key, or the located
 * problems (`file:line:column`); a file that cannot be read is one problem without a position.
 */
export function readSettingsFile(
  path: string,
  read: (path: string) => string = (p) => readFileSync(p, "utf8"),
): { values: Map<string, unknown> } | { problems: ConfigProblem[] } {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return {
      problems: [{ path: "", file: path, message: `cannot read settings file: ${reason}` }],
    };
  }
  const parsed = parseJsonc(text, path);
  if (parsed.syntaxProblems.length > 0) return { problems: parsed.syntaxProblems };
  const checked = checkSchema(SETTINGS_SCHEMA, parsed.doc.value);
  const problems = locateProblems(parsed.doc, [...parsed.duplicateKeys, ...checked.problems]);
  if (problems.length > 0) return { problems };
  const values = new Map<string, unknown>();
  for (const spec of SETTING_SPECS) {
    if (getPath(parsed.doc.value, spec.key) !== undefined) {
      values.set(spec.key, getPath(checked.value, spec.key));
    }
  }
  return { values };
}

/**
 * Parses argv (without node and script), the environment and the settings file into a command.
 * Never exits; usage problems come back as `{kind: "exit", code: 2}` with the reason (for a bad
 * settings file, one `file:line:column: key: problem` line each) and the usage hint.
 */
export function parseServerArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  version: string,
  readFile?: (path: string) => string,
): ServerCommand {
  const { program, attrs } = buildProgram(version);
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
  const o = program.opts<Record<string, unknown>>();
  if (o.version === true) return { kind: "exit", code: 0, stdout: `nstance-server ${version}\n` };

  const configPath =
    typeof o.config === "string" ? o.config : env[CONFIG_ENV] ? env[CONFIG_ENV] : undefined;
  let fileValues = new Map<string, unknown>();
  if (configPath !== undefined) {
    const r = readSettingsFile(configPath, readFile);
    if ("problems" in r) return usage(r.problems.map(formatConfigProblem).join("\n"));
    fileValues = r.values;
  }

  // Layer by layer: default < file < environment < flag (only flags given on the command line).
  const resolved = new Map<string, ResolvedSetting>();
  for (const spec of SETTING_SPECS) {
    let r: ResolvedSetting = { value: spec.node.default, source: "default" };
    if (fileValues.has(spec.key)) r = { value: fileValues.get(spec.key), source: "file" };
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== "") {
      const v = parseEnvValue(spec.node, fromEnv);
      if (checkSchema(spec.node, v).problems.length > 0) {
        return usage(`invalid ${spec.env} "${fromEnv}" (${hintFor(spec.node)})`);
      }
      r = { value: v, source: "env" };
    }
    const attr = attrs.get(spec.key)!;
    if (program.getOptionValueSource(attr) === "cli") {
      const v = o[attr];
      if (checkSchema(spec.node, v).problems.length > 0) {
        return usage(`invalid ${spec.flag} "${String(v)}" (${hintFor(spec.node)})`);
      }
      r = { value: v, source: "flag" };
    }
    resolved.set(spec.key, r);
  }
  const value = (key: string): unknown => resolved.get(key)?.value;
  const text = (key: string): string | undefined => {
    const v = value(key);
    return typeof v === "string" && v !== "" ? v : undefined;
  };

  const rank = (key: string): number => SETTING_SOURCES.indexOf(resolved.get(key)!.source);
  // `debug` means log level debug unless a log level was set at a higher precedence.
  const logLevel = (
    value("debug") === true && rank("debug") >= rank("log_level") ? "debug" : value("log_level")
  ) as LogLevel;
  const logFormat = value("log_format") as LogFormat;
  const shard = text("shard");
  const storage = text("storage") as StorageKind | undefined;
  const bucket = text("bucket");
  const prefixTemplate = text("prefix") ?? DEFAULT_PREFIX;

  const requireSettings = (names: Array<[string, string | undefined]>): string | undefined => {
    const missing = names.filter(([, v]) => v === undefined).map(([n]) => n);
    if (missing.length === 0) return undefined;
    const list = missing.map((n) => `--${n}`).join(", ");
    return `missing required flag${missing.length > 1 ? "s" : ""} ${list}`;
  };

  if (o.validate !== undefined) {
    if (typeof o.validate === "string") {
      return { kind: "validate-file", path: o.validate, logLevel, logFormat };
    }
    const missing = requireSettings([
      ["shard", shard],
      ["storage", storage],
      ["bucket", bucket],
    ]);
    if (missing) return usage(`${missing} (bare --validate fetches the shard config from storage)`);
    return {
      kind: "validate-remote",
      shard: shard!,
      storage: storage!,
      bucket: bucket!,
      prefix: prefixTemplate.replaceAll("{shard}", shard!),
      logLevel,
      logFormat,
    };
  }

  const id = text("id");
  const missing = requireSettings([
    ["id", id],
    ["shard", shard],
    ["storage", storage],
    ["bucket", bucket],
  ]);
  if (missing) return usage(missing);

  const bindOverrides: Partial<Record<BindName, string>> = {};
  for (const b of BIND_NAMES) {
    const v = text(`bind.${b}`);
    if (v !== undefined) bindOverrides[b] = v;
  }
  const heartbeatIntervalMs = parseDurationMs(value("heartbeat_interval") as string)!;
  const heartbeatTtlMs = parseDurationMs(value("heartbeat_ttl") as string)!;
  if (heartbeatTtlMs <= heartbeatIntervalMs) {
    return usage("--heartbeat-ttl must be longer than --heartbeat-interval");
  }
  const advertiseHost = text("advertise_host");
  return {
    kind: "run",
    settings: {
      heartbeatIntervalMs,
      heartbeatTtlMs,
      id: id!,
      shard: shard!,
      storage: storage!,
      bucket: bucket!,
      prefix: prefixTemplate.replaceAll("{shard}", shard!),
      cachedir: text("cachedir") ?? DEFAULT_CACHEDIR,
      ...(advertiseHost ? { advertiseHost } : {}),
      logLevel,
      logFormat,
      bindOverrides,
    },
  };
}
