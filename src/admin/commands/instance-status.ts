// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin instance status <id>`: one instance and every decision taken about it. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { instanceDetailsJson, renderInstanceDetails } from "./instance-output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `instance status` under `instance`. */
export function registerInstanceStatus(instance: Command, ctx: CommandContext): void {
  instance
    .command("status")
    .description(
      "Show one instance's status and its decision history (created, drained, deleted …)",
    )
    .argument("<id>", "instance ID")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.instanceStatus(sel, id, signal),
        jsonKey: "instance",
        toJson: instanceDetailsJson,
        human: (ok) => ok.map(({ shard, value }) => renderInstanceDetails(shard, value)).join("\n"),
      });
    });
}
