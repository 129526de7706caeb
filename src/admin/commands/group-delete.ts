// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin group delete <group>`: removes a dynamic group (its instances are drained). */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `group delete` under `group`. */
export function registerGroupDelete(group: Command, ctx: CommandContext): void {
  group
    .command("delete")
    .description(
      "Delete a dynamic group, or the dynamic overrides of a static one; its instances are drained and deleted",
    )
    .argument("<group>", "group key")
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.deleteGroup(sel, key, signal),
        jsonKey: "group",
        toJson: (v) => ({ key: v.key, deleted: true }),
        human: (ok) =>
          renderTable(
            ["SHARD", "GROUP", "RESULT"],
            ok.map(({ shard, value }) => [shard, value.key, "deleted"]),
          ),
      });
    });
}
