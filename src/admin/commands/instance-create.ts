// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin instance create <group>`: an on-demand instance, outside the group's size. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { parseVars } from "./group-size.js";
import { runShardCommand } from "./shard-command.js";

interface InstanceCreateFlags {
  id?: string;
  instanceType?: string;
  subnetPool?: string;
  var: string[];
}

/** Registers `instance create` under `instance`. */
export function registerInstanceCreate(instance: Command, ctx: CommandContext): void {
  instance
    .command("create")
    .description(
      "Create an on-demand instance from a group's template; the reconciler never counts or scales it (delete it yourself)",
    )
    .argument("<group>", "group key")
    .option("--id <id>", "instance ID to use (template kind + 26 base32 characters)")
    .option("--instance-type <type>", "instance type override")
    .option("--subnet-pool <pool>", "subnet pool override")
    .option(
      "--var <key=value>",
      "template variable over the group's (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .action(async (group: string, flags: InstanceCreateFlags, cmd: Command) => {
      const vars = parseVars(flags.var);
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) =>
          svc.createInstance(
            sel,
            {
              group,
              instanceId: flags.id,
              instanceType: flags.instanceType,
              subnetPool: flags.subnetPool,
              vars,
            },
            signal,
          ),
        jsonKey: "instance",
        toJson: (v) => ({ instance_id: v.instanceId, group, status: v.status }),
        human: (ok) =>
          renderTable(
            ["SHARD", "INSTANCE", "GROUP", "STATUS"],
            ok.map(({ shard, value }) => [shard, value.instanceId, group, value.status]),
          ),
      });
    });
}
