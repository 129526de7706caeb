// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin instance drains`: follows the drain notices of the selected shards' leaders and
 * prints each as it arrives (one line, or one JSON object per line with `--json`) until Ctrl-C.
 */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { exitCodeForResults } from "../exit-code.js";
import { adminLogger, globalSettings, shardTargets } from "../global-options.js";
import { renderError } from "../output.js";
import { AdminService } from "../service/admin-service.js";
import { loadOperatorIdentity } from "../service/operator-identity.js";
import { drainEventJson, drainEventLine } from "./instance-output.js";

/** Registers `instance drains` under `instance`. */
export function registerInstanceDrains(instance: Command, ctx: CommandContext): void {
  instance
    .command("drains")
    .description(
      "Print drain notices as they arrive: the instances draining now, then each new pending_deletion and deleted; runs until Ctrl-C",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const settings = globalSettings(cmd, ctx.io);
      const { servers, selection } = shardTargets(cmd, ctx.io);
      const svc = new AdminService({
        servers,
        identity: await loadOperatorIdentity(settings.identityDir),
        timeoutMs: settings.timeoutMs,
        logger: adminLogger(settings, ctx.io),
      });
      const out = ctx.io.stdout;
      try {
        const results = await svc.watchDrains(
          selection,
          settings.json
            ? (shard, e) => out.write(`${JSON.stringify(drainEventJson(shard, e))}\n`)
            : (shard, e) => out.write(drainEventLine(shard, e)),
          ctx.signal,
        );
        // A stream that ended on its own (leadership moved, server stopped) is an error to report.
        for (const r of results) if (!r.ok) ctx.io.stderr.write(renderError(r.error.message));
        ctx.exitCode = exitCodeForResults(results);
      } finally {
        await svc.stop();
      }
    });
}
