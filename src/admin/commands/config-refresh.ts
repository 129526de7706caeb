// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin config refresh`: makes shards reload their config from storage now. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { configRefreshJson, renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `config refresh` under `config`. */
export function registerConfigRefresh(config: Command, ctx: CommandContext): void {
  config
    .command("refresh")
    .description(
      "Reload the static config and dynamic groups from storage; an invalid config is refused and the old one stays",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.refreshConfig(sel, signal),
        jsonKey: "refresh",
        toJson: configRefreshJson,
        human: (ok) =>
          renderTable(
            ["SHARD", "UPDATED", "PREV_ETAG", "ETAG"],
            ok.map(({ shard, value }) => [
              shard,
              value.updated ? "yes" : "no",
              value.prevEtag,
              value.etag,
            ]),
          ),
      });
    });
}
