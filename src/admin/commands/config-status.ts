// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin config status`: which static config object each shard has loaded. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { configStatusJson, renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `config status` under `config`. */
export function registerConfigStatus(config: Command, ctx: CommandContext): void {
  config
    .command("status")
    .description("Show the etag and size of the config each shard has loaded")
    .action(async (_opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.configStatus(sel, signal),
        jsonKey: "config",
        toJson: configStatusJson,
        human: (ok) =>
          renderTable(
            ["SHARD", "ETAG", "SIZE", "LAST_MODIFIED"],
            ok.map(({ shard, value }) => [
              shard,
              value.etag,
              String(value.sizeBytes),
              value.lastModified?.toISOString() ?? "",
            ]),
          ),
      });
    });
}
