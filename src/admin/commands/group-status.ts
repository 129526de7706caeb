// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin group status <group>`: one group's details on the selected shards. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { groupJson, renderGroupDetails } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `group status` under `group`. */
export function registerGroupStatus(group: Command, ctx: CommandContext): void {
  group
    .command("status")
    .description("Show one group's configuration, size and instances")
    .argument("<group>", "group key")
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.groupStatus(sel, key, signal),
        jsonKey: "group",
        toJson: groupJson,
        human: (ok) => ok.map(({ shard, value }) => renderGroupDetails(shard, value)).join("\n"),
      });
    });
}
