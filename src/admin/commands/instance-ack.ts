// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin instance ack <id>`: acknowledges a drain, so the instance is deleted now. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `instance ack` under `instance`. */
export function registerInstanceAck(instance: Command, ctx: CommandContext): void {
  instance
    .command("ack")
    .description(
      "Acknowledge that a draining instance (pending_deletion) is drained; the server deletes it now",
    )
    .argument("<id>", "instance ID")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.acknowledgeDrained(sel, id, signal),
        jsonKey: "instance",
        toJson: (v) => ({ instance_id: v.instanceId, acknowledged: true }),
        human: (ok) =>
          renderTable(
            ["SHARD", "INSTANCE", "RESULT"],
            ok.map(({ shard, value }) => [shard, value.instanceId, "acknowledged"]),
          ),
      });
    });
}
