// SPDX-License-Identifier: Apache-2.0
/**
 * How the `instance …` commands print instances and drain notices: table rows and key/value
 * blocks for people, snake_case JSON for scripts (one object per line for the drain stream).
 */
import type {
  InstanceEvent,
  InstanceHistoryEntry,
  InstanceSummary,
} from "../../protocol/gen/nstance/v1/operator.js";
import { formatDurationMs } from "../../shared/duration.js";
import { formatVars, renderKeyValues, renderTable } from "../output.js";
import type { InstanceDetails } from "../service/admin-service.js";

const iso = (d: Date | undefined): string => d?.toISOString() ?? "";
const isoOrNull = (d: Date | undefined): string | null => d?.toISOString() ?? null;

/** Table columns for instances. */
export const INSTANCE_TABLE_HEADERS = [
  "SHARD",
  "INSTANCE",
  "GROUP",
  "STATUS",
  "HEALTH",
  "ON_DEMAND",
  "PROVIDER_ID",
  "AGE",
] as const;

/** One instance table row. */
export function instanceRow(shard: string, i: InstanceSummary): string[] {
  return [
    shard,
    i.instanceId,
    i.group,
    i.status,
    i.health,
    i.onDemand ? "yes" : "no",
    i.providerInstanceId,
    formatDurationMs(i.ageSeconds * 1000),
  ];
}

/** An instance of a list as JSON. */
export function instanceJson(i: InstanceSummary): Record<string, unknown> {
  return {
    instance_id: i.instanceId,
    tenant: i.tenant,
    group: i.group,
    on_demand: i.onDemand,
    status: i.status,
    health: i.health,
    provider_instance_id: i.providerInstanceId,
    created_at: isoOrNull(i.createdAt),
    registered_at: isoOrNull(i.registeredAt),
    last_report_at: isoOrNull(i.lastReportAt),
    age_seconds: i.ageSeconds,
  };
}

function historyJson(e: InstanceHistoryEntry): Record<string, unknown> {
  return { at: isoOrNull(e.at), decision: e.decision, reason: e.reason, evidence: e.evidence };
}

/** An instance's status and history as JSON. */
export function instanceDetailsJson(d: InstanceDetails): Record<string, unknown> {
  return {
    instance_id: d.instanceId,
    tenant: d.tenant,
    status: d.status,
    provider_instance_id: d.providerInstanceId,
    created_at: isoOrNull(d.createdAt),
    last_seen: isoOrNull(d.lastSeen),
    history: d.history.map(historyJson),
  };
}

/** An instance's status as key/value lines, then its decision history as a table. */
export function renderInstanceDetails(shard: string, d: InstanceDetails): string {
  const details = renderKeyValues([
    ["Shard", shard],
    ["Instance", d.instanceId],
    ["Tenant", d.tenant],
    ["Status", d.status],
    ["Provider ID", d.providerInstanceId],
    ["Created at", iso(d.createdAt)],
    ["Last seen", iso(d.lastSeen)],
  ]);
  if (d.history.length === 0) return details;
  return `${details}\n${renderTable(
    ["AT", "DECISION", "REASON", "EVIDENCE"],
    d.history.map((e) => [iso(e.at), e.decision, e.reason, formatVars(e.evidence)]),
  )}`;
}

/** A drain notice as JSON (one line of `instance drains --json`). */
export function drainEventJson(shard: string, e: InstanceEvent): Record<string, unknown> {
  return {
    shard,
    instance_id: e.instanceId,
    tenant: e.tenant,
    group: e.group,
    provider_instance_id: e.providerInstanceId,
    status: e.status,
    reason: e.reason,
    unhealthy_at: isoOrNull(e.unhealthyAt),
    delete_at: isoOrNull(e.deleteAt),
  };
}

/**
 * A drain notice as one line for people:
 * `<shard> <status> <instance> group=<group> reason=<reason> delete_at=<time>`.
 */
export function drainEventLine(shard: string, e: InstanceEvent): string {
  const deleteAt = e.status === "pending_deletion" ? ` delete_at=${iso(e.deleteAt) || "-"}` : "";
  return `${shard}  ${e.status}  ${e.instanceId}  group=${e.group || "-"} reason=${e.reason || "-"}${deleteAt}\n`;
}
