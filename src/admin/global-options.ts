// SPDX-License-Identifier: Apache-2.0
/**
 * The admin's global flags and their environment fallbacks. A flag on the command line wins over
 * its environment variable, which wins over the default.
 */
import type { Command } from "commander";
import { parseDurationMs } from "../shared/duration.js";
import { errorMessage } from "../shared/errors.js";
import { createLogger, type Logger, silentLogger } from "../shared/logger.js";
import type { AdminIo } from "./command-context.js";
import { DEFAULT_IDENTITY_DIR } from "./service/operator-identity.js";
import {
  parseServers,
  type ShardSelection,
  type ShardServer,
  selectShards,
} from "./service/shard-servers.js";
import { UsageError } from "./usage-error.js";

/** Environment variables read by the global flags. */
export const ADMIN_ENV = {
  servers: "NSTANCE_ADMIN_SERVERS",
  shard: "NSTANCE_ADMIN_SHARD",
  identityDir: "NSTANCE_ADMIN_IDENTITY_DIR",
} as const;

/** Default `--timeout`: the reference's 30 s connection timeout. */
export const DEFAULT_TIMEOUT = "30s";

/** Adds the global flags to the root program. */
export function addGlobalOptions(program: Command): void {
  program
    .option(
      "--servers <list>",
      `operator API of each shard: shard=host:port,...; list a shard once per server of its HA set (env ${ADMIN_ENV.servers})`,
    )
    .option("--shard <id>", `shard to act on (env ${ADMIN_ENV.shard})`)
    .option("--all-shards", "act on every shard in --servers", false)
    .option(
      "--identity-dir <dir>",
      `operator identity: ca.crt, identity.key, identity.crt (env ${ADMIN_ENV.identityDir}, default ${DEFAULT_IDENTITY_DIR})`,
    )
    .option("--json", "print JSON instead of tables", false)
    .option(
      "--timeout <duration>",
      "time allowed for each call, retries on another server included (Go duration)",
      DEFAULT_TIMEOUT,
    )
    .option("-v, --debug", "log debug details to stderr", false);
}

/** The global settings every command uses. */
export interface GlobalSettings {
  json: boolean;
  timeoutMs: number;
  identityDir: string;
  debug: boolean;
}

/** The flags of the root program, wherever on the command line they were given. */
function rootOpts(cmd: Command): Record<string, string | boolean | undefined> {
  return cmd.optsWithGlobals<Record<string, string | boolean | undefined>>();
}

function envValue(io: AdminIo, name: string): string | undefined {
  const v = io.env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** Parses a positive Go duration flag; throws UsageError naming the flag. */
export function parseDurationFlag(flag: string, text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined || !(ms > 0)) {
    throw new UsageError(
      `invalid ${flag} "${text}": want a positive Go duration such as 30s or 3h`,
    );
  }
  return ms;
}

/** Reads the global settings; throws UsageError for a malformed `--timeout`. */
export function globalSettings(cmd: Command, io: AdminIo): GlobalSettings {
  const o = rootOpts(cmd);
  return {
    json: o.json === true,
    debug: o.debug === true,
    timeoutMs: parseDurationFlag("--timeout", String(o.timeout ?? DEFAULT_TIMEOUT)),
    identityDir:
      (o.identityDir as string | undefined) ??
      envValue(io, ADMIN_ENV.identityDir) ??
      DEFAULT_IDENTITY_DIR,
  };
}

/** The servers and the shards a command addresses. */
export interface ShardTargets {
  servers: ShardServer[];
  selection: ShardSelection;
}

/**
 * Resolves `--servers` and `--shard` / `--all-shards`. With a single server and no shard given,
 * that server's shard is used. Throws UsageError for a missing or malformed server list, both
 * `--shard` and `--all-shards`, neither (with several servers), or an unknown shard.
 */
export function shardTargets(cmd: Command, io: AdminIo): ShardTargets {
  const o = rootOpts(cmd);
  const serversText = (o.servers as string | undefined) ?? envValue(io, ADMIN_ENV.servers);
  if (serversText === undefined) {
    throw new UsageError(
      `--servers is required (or ${ADMIN_ENV.servers}): shard=host:port,... naming each shard's operator API`,
    );
  }
  let servers: ShardServer[];
  try {
    servers = parseServers(serversText);
  } catch (err) {
    throw new UsageError(`--servers: ${errorMessage(err)}`, { cause: err });
  }
  const shardFlag = o.shard as string | undefined;
  if (o.allShards === true) {
    if (shardFlag !== undefined) {
      throw new UsageError("--shard and --all-shards are mutually exclusive");
    }
    return { servers, selection: { allShards: true } };
  }
  const shard = shardFlag ?? envValue(io, ADMIN_ENV.shard);
  if (shard === undefined) {
    if (servers.length === 1) return { servers, selection: { shard: servers[0]!.shard } };
    throw new UsageError(
      `choose a shard with --shard (or ${ADMIN_ENV.shard}), or use --all-shards`,
    );
  }
  try {
    selectShards(servers, { shard });
  } catch (err) {
    throw new UsageError(errorMessage(err), { cause: err });
  }
  return { servers, selection: { shard } };
}

/** A logger on stderr: debug lines with `--debug`, nothing otherwise (errors are printed plainly). */
export function adminLogger(settings: GlobalSettings, io: AdminIo): Logger {
  if (!settings.debug) return silentLogger;
  return createLogger({
    level: "debug",
    format: "text",
    base: { component: "nstance-admin" },
    destination: io.stderr as NodeJS.WritableStream,
  });
}
