// SPDX-License-Identifier: Apache-2.0
/** `nstance-admin group create <group>`: a new dynamic group on the selected shards. */
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { GROUP_TABLE_HEADERS, groupJson, groupRow, renderTable } from "../output.js";
import { UsageError } from "../usage-error.js";
import { parseGroupSize, parseVars } from "./group-size.js";
import { runShardCommand } from "./shard-command.js";

interface GroupCreateFlags {
  template?: string;
  size: string;
  instanceType?: string;
  subnetPool?: string;
  var: string[];
}

/** Registers `group create` under `group`. */
export function registerGroupCreate(group: Command, ctx: CommandContext): void {
  group
    .command("create")
    .description("Create a dynamic group (fails on shards where the group already exists)")
    .argument("<group>", "group key")
    .option("--template <name>", "instance template (required)")
    .option("--size <n>", "desired number of instances", "0")
    .option("--instance-type <type>", "instance type override")
    .option("--subnet-pool <pool>", "subnet pool (defaults to the template's)")
    .option(
      "--var <key=value>",
      "template variable (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .action(async (key: string, flags: GroupCreateFlags, cmd: Command) => {
      if (!flags.template) throw new UsageError("--template is required");
      const size = parseGroupSize("--size", flags.size);
      const vars = parseVars(flags.var);
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) =>
          svc.createGroup(
            sel,
            {
              key,
              template: flags.template!,
              size,
              instanceType: flags.instanceType,
              subnetPool: flags.subnetPool,
              vars,
            },
            signal,
          ),
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
