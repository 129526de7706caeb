// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin serve`: the admin operations as a JSON HTTPS API, with the web dashboard at `/`.
 * It runs only when started, and refuses to start without a token file. Runs until interrupted.
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import { createLogger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { CommandContext } from "../command-context.js";
import {
  addClusterStorageOptions,
  type ClusterStorageFlags,
  hasStorageFlags,
  openClusterStorage,
} from "../commands/cluster-storage.js";
import { ADMIN_ENV, globalSettings } from "../global-options.js";
import { loadOperatorIdentity } from "../service/operator-identity.js";
import { formatServers, parseServers, type ShardServer } from "../service/shard-servers.js";
import { UsageError } from "../usage-error.js";
import { DEFAULT_ADMIN_BIND, DEFAULT_ADMIN_RATE_LIMIT } from "./admin-http-server.js";
import { AdminServe } from "./admin-serve.js";
import { DEFAULT_SHARD_PREFIX } from "./shard-leadership.js";
import { parseTokenFileFlag, type TokenFile } from "./token-file-auth.js";

interface ServeFlags extends ClusterStorageFlags {
  bind: string;
  tokenFile?: string[];
  tlsCert?: string;
  tlsKey?: string;
  rateLimit: string;
  rateLimitBurst: string;
  apiDocs: boolean;
  prefix: string;
}

function positive(flag: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(
      `invalid ${flag} "${text}": want a positive ${integer ? "whole " : ""}number`,
    );
  }
  return n;
}

function servers(cmd: Command, ctx: CommandContext): ShardServer[] {
  const given = cmd.optsWithGlobals<{ servers?: string }>().servers;
  const text = given ?? (ctx.io.env[ADMIN_ENV.servers] || undefined);
  if (text === undefined) {
    throw new UsageError(
      `--servers is required (or ${ADMIN_ENV.servers}): shard=host:port,... naming each shard's operator API`,
    );
  }
  try {
    return parseServers(text);
  } catch (err) {
    throw new UsageError(`--servers: ${errorMessage(err)}`, { cause: err });
  }
}

async function readTls(
  flags: ServeFlags,
): Promise<{ certPem: string; keyPem: string } | undefined> {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) return undefined;
  try {
    return {
      certPem: await readFile(flags.tlsCert, "utf8"),
      keyPem: await readFile(flags.tlsKey, "utf8"),
    };
  } catch (err) {
    throw new UsageError(`cannot read the TLS certificate or key: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

function waitForAbort(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!signal) return; // runs until the process is stopped
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** Registers `serve` on the root program. */
export function registerServe(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("serve")
    .description(
      "Serve the admin operations as an HTTPS JSON API (bearer tokens, OpenAPI at /openapi.json) and the web dashboard at /",
    )
    .option(
      "--bind <host:port>",
      "listen address (':8080' for every interface)",
      DEFAULT_ADMIN_BIND,
    )
    .option(
      "--token-file <[name=]path>",
      "file holding an API bearer token, read on every request (repeatable; at least one)",
      (v: string, acc: string[] | undefined) => [...(acc ?? []), v],
    )
    .option("--tls-cert <file>", "server certificate PEM (default: self-signed for localhost)")
    .option("--tls-key <file>", "server private key PEM")
    .option(
      "--rate-limit <per-second>",
      "requests per second per client address",
      String(DEFAULT_ADMIN_RATE_LIMIT.perSecond),
    )
    .option(
      "--rate-limit-burst <n>",
      "requests at once per client address",
      String(DEFAULT_ADMIN_RATE_LIMIT.burst),
    )
    .option("--api-docs", "serve /openapi.json without a token", false)
    .option(
      "--prefix <template>",
      "shard prefix in the bucket, for leaders and servers",
      DEFAULT_SHARD_PREFIX,
    );
  addClusterStorageOptions(cmd, false);
  cmd.action(async (flags: ServeFlags, c: Command) => {
    if (!flags.tokenFile || flags.tokenFile.length === 0) {
      throw new UsageError(
        "serve needs at least one --token-file: the API and dashboard are never served without a token",
      );
    }
    let tokenFiles: TokenFile[];
    try {
      tokenFiles = flags.tokenFile.map(parseTokenFileFlag);
    } catch (err) {
      throw new UsageError(errorMessage(err), { cause: err });
    }
    const rateLimit = {
      perSecond: positive("--rate-limit", flags.rateLimit, false),
      burst: positive("--rate-limit-burst", flags.rateLimitBurst, true),
    };
    const settings = globalSettings(c, ctx.io);
    const shardServers = servers(c, ctx);
    const tls = await readTls(flags);
    const logger = createLogger({
      level: settings.debug ? "debug" : "info",
      format: "text",
      base: { component: "nstance-admin" },
      destination: ctx.io.stderr as NodeJS.WritableStream,
    });
    const identity = await loadOperatorIdentity(settings.identityDir);
    let storage: ObjectStorage | undefined;
    if (hasStorageFlags(flags)) storage = await openClusterStorage(flags, ctx.io, logger);

    const serve = new AdminServe({
      servers: shardServers,
      identity,
      tokenFiles,
      bind: flags.bind,
      ...(tls ? { tls } : {}),
      rateLimit,
      publicDocs: flags.apiDocs,
      ...(storage ? { storage } : {}),
      prefixTemplate: flags.prefix,
      timeoutMs: settings.timeoutMs,
      logger,
    });
    let info: Awaited<ReturnType<AdminServe["start"]>>;
    try {
      info = await serve.start();
    } catch (err) {
      if (err instanceof NstanceError && err.code === "invalid_argument") {
        throw new UsageError(errorMessage(err), { cause: err });
      }
      throw err;
    }
    const lines = [
      `nstance-admin serve: dashboard and API at ${info.url}`,
      `  shards:       ${formatServers(shardServers).replaceAll(",", ", ")}`,
      `  tokens:       ${tokenFiles.map((t) => `${t.name} (${t.path})`).join(", ")}; read on every request`,
      info.selfSigned
        ? `  certificate:  self-signed for ${info.selfSigned.hosts.join(", ")}\n  fingerprint:  SHA-256 ${info.selfSigned.fingerprint256}`
        : `  certificate:  ${flags.tlsCert}`,
      `  leaders:      ${storage ? `from ${storage.description}` : "not shown (give --storage and --bucket)"}`,
      `  rate limit:   ${rateLimit.burst} at once, ${rateLimit.perSecond}/s per client address`,
      "",
    ];
    ctx.io.stdout.write(lines.join("\n"));
    try {
      await waitForAbort(ctx.signal);
    } finally {
      await serve.stop();
    }
  });
}
