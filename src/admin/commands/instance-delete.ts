// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin instance delete <id>`: deletes an instance now, without drain. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `instance delete` under `instance`. */
export function registerInstanceDelete(instance: Command, ctx: CommandContext): void {
  instance
    .command("delete")
    .description(
      "Delete an instance now, without drain (a managed group is backfilled); an unknown ID reports unknown",
    )
    .argument("<id>", "instance ID")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.deleteInstance(sel, id, signal),
        jsonKey: "instance",
        toJson: (v) => ({ instance_id: id, status: v.status }),
        human: (ok) =>
          renderTable(
            ["SHARD", "INSTANCE", "RESULT"],
            ok.map(({ shard, value }) => [shard, id, value.status]),
          ),
      });
    });
}
