// SPDX-License-Identifier: Apache-2.0
/**
 * What failure detection reads from the SQLite cache: the health-relevant columns of registered
 * instances (one, or all for the sweep) and an instance's stored reports (for its report interval).
 */
import type { Db } from "../../db/database.js";
import { type ReportSample, reportSample } from "./report-interval.js";

/** An instance as failure detection sees it (times in unix ms). */
export interface DetectionRow {
  id: string;
  tenant: string;
  groupKey: string;
  providerId: string | undefined;
  registeredAt: number | undefined;
  /** Arrival of the last stored report. */
  healthAt: number | undefined;
  unhealthyAt: number | undefined;
  unhealthyReason: string | undefined;
  unhealthySkipDrain: boolean;
  drainStartedAt: number | undefined;
  replacedBy: string | undefined;
  deletedAt: number | undefined;
}

type RawRow = [
  id: string,
  tenant: string,
  groupKey: string,
  providerId: string | null,
  registeredAt: number | null,
  healthAt: number | null,
  unhealthyAt: number | null,
  unhealthyReason: string | null,
  unhealthySkipDrain: number,
  drainStartedAt: number | null,
  replacedBy: string | null,
  deletedAt: number | null,
];

const COLUMNS = `id, tenant, group_key, provider_id, registered_at, health_at, unhealthy_at,
  unhealthy_reason, unhealthy_skip_drain, drain_started_at, replaced_by, deleted_at`;

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function toRow(r: RawRow): DetectionRow {
  return {
    id: r[0],
    tenant: r[1],
    groupKey: r[2],
    providerId: opt(r[3]),
    registeredAt: opt(r[4]),
    healthAt: opt(r[5]),
    unhealthyAt: opt(r[6]),
    unhealthyReason: opt(r[7]),
    unhealthySkipDrain: r[8] === 1,
    drainStartedAt: opt(r[9]),
    replacedBy: opt(r[10]),
    deletedAt: opt(r[11]),
  };
}

/** One instance (soft-deleted rows included), or undefined. */
export function readDetectionRow(db: Db, id: string): DetectionRow | undefined {
  const r = db
    .prepare<unknown[], RawRow>(`SELECT ${COLUMNS} FROM instances WHERE id = ?`)
    .raw(true)
    .get(id);
  return r && toRow(r);
}

/**
 * Live instances the sweep looks at: registered (an agent that never registered is garbage
 * collection's), with a provider ID, and not already condemned as gone.
 */
export function listSweepRows(db: Db): DetectionRow[] {
  return db
    .prepare<unknown[], RawRow>(
      `SELECT ${COLUMNS} FROM instances
       WHERE deleted_at IS NULL AND registered_at IS NOT NULL AND provider_id IS NOT NULL
         AND unhealthy_skip_drain = 0
       ORDER BY id`,
    )
    .raw(true)
    .all()
    .map(toRow);
}

/** Sampled history rows read per estimate (the newest; history keeps about one a minute). */
const HISTORY_SAMPLES = 10;

/** The instance's latest report and a few older ones from the history, as cadence samples. */
export function readReportSamples(
  db: Db,
  id: string,
): { latest: ReportSample | undefined; earlier: ReportSample[] } {
  const parse = (text: string | null | undefined): ReportSample | undefined => {
    if (!text) return undefined;
    try {
      return reportSample(JSON.parse(text) as unknown);
    } catch {
      // A cache row with unreadable JSON only means "no estimate": the configured interval applies.
      return undefined;
    }
  };
  const row = db.prepare("SELECT health FROM instances WHERE id = ?").get(id) as
    | { health: string | null }
    | undefined;
  const history = db
    .prepare(
      "SELECT report FROM health_reports WHERE instance_id = ? ORDER BY received_at DESC LIMIT ?",
    )
    .all(id, HISTORY_SAMPLES) as Array<{ report: string }>;
  return {
    latest: parse(row?.health),
    earlier: history.map((h) => parse(h.report)).filter((s): s is ReportSample => s !== undefined),
  };
}
