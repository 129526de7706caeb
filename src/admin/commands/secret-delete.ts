// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin secret delete <name>`: deletes a cluster secret; a missing one succeeds. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `secret delete` under `secret`. */
export function registerSecretDelete(secret: Command, ctx: CommandContext): void {
  secret
    .command("delete")
    .description(
      "Delete a cluster secret (files that use it keep their last copy on running instances)",
    )
    .argument("<name>", "secret name")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.deleteSecret(sel, name, signal),
        jsonKey: "secret",
        toJson: (v) => ({ name: v.name, deleted: true }),
        human: (ok) =>
          renderTable(
            ["SHARD", "SECRET", "RESULT"],
            ok.map(({ shard, value }) => [shard, value.name, "deleted"]),
          ),
      });
    });
}
