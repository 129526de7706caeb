// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin secret list`: the names of the cluster secrets (values are never returned). */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `secret list` under `secret`. */
export function registerSecretList(secret: Command, ctx: CommandContext): void {
  secret
    .command("list")
    .description("List the names of the cluster secrets (values are never shown)")
    .action(async (_opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.listSecrets(sel, signal),
        jsonKey: "secrets",
        toJson: (names) => names.map((name) => ({ name })),
        human: (ok) =>
          renderTable(
            ["SHARD", "SECRET"],
            ok.flatMap(({ shard, value }) => value.map((name) => [shard, name])),
          ),
      });
    });
}
