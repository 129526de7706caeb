// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin instance history <id>`: the story of one instance, as the server decided it —
 * created, registered, found unhealthy and why (provider status, last report age), replacement
 * started, drain notified, acknowledged or timed out, deleted — each with its time, the time since
 * the first entry, its reason and its evidence. Deleted instances keep their history until
 * `garbage_collection.deleted_record_retention` has passed.
 */
import type { Command } from "commander";
import { formatDurationMs } from "../../shared/duration.js";
import type { CommandContext } from "../command-context.js";
import { formatVars, renderKeyValues, renderTable } from "../output.js";
import type { InstanceDetails } from "../service/admin-service.js";
import { instanceDetailsJson } from "./instance-output.js";
import { runShardCommand } from "./shard-command.js";

/** Table columns of the history. */
export const HISTORY_TABLE_HEADERS = ["AT", "ELAPSED", "DECISION", "REASON", "EVIDENCE"] as const;

/** The history as JSON: the instance's ID and status, and its entries oldest first. */
export function instanceHistoryJson(d: InstanceDetails): Record<string, unknown> {
  const { instance_id, status, history } = instanceDetailsJson(d);
  return { instance_id, status, history };
}

/** The history for people: who and where, then one table row per decision. */
export function renderInstanceHistory(shard: string, d: InstanceDetails): string {
  const head = renderKeyValues([
    ["Shard", shard],
    ["Instance", d.instanceId],
    ["Status", d.status],
  ]);
  if (d.history.length === 0) return `${head}(no decisions recorded)\n`;
  const first = d.history[0]!.at?.getTime();
  return `${head}\n${renderTable(
    HISTORY_TABLE_HEADERS,
    d.history.map((e) => {
      const at = e.at?.getTime();
      return [
        e.at?.toISOString() ?? "",
        at === undefined || first === undefined ? "" : `+${formatDurationMs(at - first)}`,
        e.decision,
        e.reason,
        formatVars(e.evidence),
      ];
    }),
  )}`;
}

/** Registers `instance history` under `instance`. */
export function registerInstanceHistory(instance: Command, ctx: CommandContext): void {
  instance
    .command("history")
    .description(
      "Show every decision about one instance, in order, with its reason and evidence (why it was replaced, drained or deleted)",
    )
    .argument("<id>", "instance ID")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.instanceStatus(sel, id, signal),
        jsonKey: "instance",
        toJson: instanceHistoryJson,
        human: (ok) => ok.map(({ shard, value }) => renderInstanceHistory(shard, value)).join("\n"),
      });
    });
}
