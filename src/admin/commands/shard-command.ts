// SPDX-License-Identifier: Apache-2.0
/**
 * The common run of an Operator API command: resolve the shards, load the identity, call every
 * selected shard, print the successes (table or JSON) and one `error:` line per failed shard, and
 * set the exit code from the outcomes.
 */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { exitCodeForResults } from "../exit-code.js";
import { adminLogger, globalSettings, shardTargets } from "../global-options.js";
import { renderError, shardResultsJson } from "../output.js";
import { AdminService, type ShardResult } from "../service/admin-service.js";
import { loadOperatorIdentity } from "../service/operator-identity.js";
import type { ShardSelection } from "../service/shard-servers.js";

/** What a shard command calls and how it prints the results. */
export interface ShardCommandSpec<T> {
  /** The service call. */
  call: (
    svc: AdminService,
    selection: ShardSelection,
    signal: AbortSignal | undefined,
  ) => Promise<ShardResult<T>[]>;
  /** Key of the value in each JSON result. */
  jsonKey: string;
  /** The value as JSON. */
  toJson: (value: T) => unknown;
  /** Human output for the shards that succeeded (called only when there is at least one). */
  human: (ok: Array<{ shard: string; value: T }>) => string;
}

/** Runs a shard command for `cmd` (the commander command whose action is running). */
export async function runShardCommand<T>(
  cmd: Command,
  ctx: CommandContext,
  spec: ShardCommandSpec<T>,
): Promise<void> {
  const settings = globalSettings(cmd, ctx.io);
  const targets = shardTargets(cmd, ctx.io);
  const identity = await loadOperatorIdentity(settings.identityDir);
  const svc = new AdminService({
    servers: targets.servers,
    identity,
    timeoutMs: settings.timeoutMs,
    logger: adminLogger(settings, ctx.io),
  });
  let results: ShardResult<T>[];
  try {
    results = await spec.call(svc, targets.selection, ctx.signal);
  } finally {
    await svc.stop();
  }
  if (settings.json) {
    ctx.io.stdout.write(shardResultsJson(results, spec.jsonKey, spec.toJson));
  } else {
    const ok = results.flatMap((r) => (r.ok ? [{ shard: r.shard, value: r.value }] : []));
    if (ok.length > 0) ctx.io.stdout.write(spec.human(ok));
    for (const r of results) if (!r.ok) ctx.io.stderr.write(renderError(r.error.message));
  }
  ctx.exitCode = exitCodeForResults(results);
}
