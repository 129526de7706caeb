// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin group scale <group> <size>`: sets an existing group's desired size. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { GROUP_TABLE_HEADERS, groupJson, groupRow, renderTable } from "../output.js";
import { parseGroupSize } from "./group-size.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `group scale` under `group`. */
export function registerGroupScale(group: Command, ctx: CommandContext): void {
  group
    .command("scale")
    .description("Set a group's desired size (static groups too); the reconciler does the rest")
    .argument("<group>", "group key")
    .argument("<size>", "desired number of instances")
    .action(async (key: string, sizeText: string, _opts: unknown, cmd: Command) => {
      const size = parseGroupSize("size", sizeText);
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.scaleGroup(sel, key, size, signal),
        jsonKey: "group",
        toJson: groupJson,
        human: (ok) =>
          renderTable(
            GROUP_TABLE_HEADERS,
            ok.map(({ shard, value }) => groupRow(shard, value)),
          ),
      });
    });
}
