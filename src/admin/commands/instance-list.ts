// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin instance list`: the caller tenant's instances on the selected shards. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { INSTANCE_TABLE_HEADERS, instanceJson, instanceRow } from "./instance-output.js";
import { runShardCommand } from "./shard-command.js";

/** Registers `instance list` under `instance`. */
export function registerInstanceList(instance: Command, ctx: CommandContext): void {
  instance
    .command("list")
    .description("List instances (managed and on-demand), oldest first, with status and health")
    .option("--group <group>", "only the instances of this group")
    .action(async (flags: { group?: string }, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.listInstances(sel, flags.group, signal),
        jsonKey: "instances",
        toJson: (instances) => instances.map(instanceJson),
        human: (ok) =>
          renderTable(
            INSTANCE_TABLE_HEADERS,
            ok.flatMap(({ shard, value }) => value.map((i) => instanceRow(shard, i))),
          ),
      });
    });
}
