// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin group list`: the caller tenant's groups on the selected shards. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { GROUP_TABLE_HEADERS, groupJson, groupRow, renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `group list` under `group`. */
export function registerGroupList(group: Command, ctx: CommandContext): void {
  group
    .command("list")
    .description("List groups (static and dynamic) with desired and actual sizes")
    .action(async (_opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.listGroups(sel, signal),
        jsonKey: "groups",
        toJson: (groups) => groups.map(groupJson),
        human: (ok) =>
          renderTable(
            GROUP_TABLE_HEADERS,
            ok.flatMap(({ shard, value }) => value.map((g) => groupRow(shard, g))),
          ),
      });
    });
}
