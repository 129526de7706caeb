// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: the chaos soak's checks that read what the servers left behind (logs, SQLite
 * caches, the storage objects). Each returns its violations (empty when the invariant holds).
 */
import BetterSqlite3 from "better-sqlite3";
import { type ParseError, parse } from "jsonc-parser";
import type { ObjectStorage } from "../../src/storage/object-storage.js";
import type { FleetDecision } from "../e2e/local-fleet-fixture.js";

/** One `Leader action` log line of a server. */
export interface LeaderAction {
  server: string;
  term: number;
  startedAt: number;
  endedAt: number;
}

/** The `Leader action` lines (debug level) of every process a server ran. */
export function leaderActions(
  logs: ReadonlyArray<{ server: string; lines: ReadonlyArray<Record<string, unknown>> }>,
): LeaderAction[] {
  return logs.flatMap(({ server, lines }) =>
    lines
      .filter((l) => l.msg === "Leader action")
      .map((l) => ({
        server,
        term: Number(l.term),
        startedAt: Number(l.started_at),
        endedAt: Number(l.ended_at),
      })),
  );
}

/**
 * No two terms acted at once: each term's actions come from one server, and every action of an
 * earlier term ended before the first action of any later term started.
 */
export function checkTermsExclusive(actions: readonly LeaderAction[]): string[] {
  const violations: string[] = [];
  const byTerm = new Map<number, LeaderAction[]>();
  for (const a of actions) byTerm.set(a.term, [...(byTerm.get(a.term) ?? []), a]);
  const terms = [...byTerm.keys()].sort((a, b) => a - b);
  for (const t of terms) {
    const servers = new Set(byTerm.get(t)!.map((a) => a.server));
    if (servers.size > 1) violations.push(`term ${t} acted on ${[...servers].join(", ")}`);
  }
  for (let i = 0; i < terms.length; i++) {
    const lastEnd = Math.max(...byTerm.get(terms[i]!)!.map((a) => a.endedAt));
    for (let j = i + 1; j < terms.length; j++) {
      const firstStart = Math.min(...byTerm.get(terms[j]!)!.map((a) => a.startedAt));
      if (lastEnd > firstStart) {
        violations.push(
          `term ${terms[i]} acted until ${lastEnd}, term ${terms[j]} already from ${firstStart}`,
        );
      }
    }
  }
  return violations;
}

/** No instance was created twice: at most one `created` decision per instance ID. */
export function checkCreatedOnce(decisions: readonly FleetDecision[]): string[] {
  const counts = new Map<string, number>();
  for (const d of decisions) {
    if (d.decision === "created") counts.set(d.instanceId, (counts.get(d.instanceId) ?? 0) + 1);
  }
  return [...counts]
    .filter(([, n]) => n > 1)
    .map(([id, n]) => `instance ${id} has ${n} "created" decisions`);
}

/** Opens a SQLite file read-only and runs `PRAGMA integrity_check`. */
export function checkSqliteIntegrity(path: string): string[] {
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
    const rows = db.pragma("integrity_check") as Array<{ integrity_check: string }>;
    const bad = rows.map((r) => r.integrity_check).filter((r) => r !== "ok");
    return bad.map((b) => `${path}: ${b}`);
  } catch (err) {
    return [`${path}: ${String(err)}`];
  } finally {
    db?.close();
  }
}

/**
 * Every `.json` / `.jsonc` object in the storage parses (read through the storage itself, e.g. the
 * S3 test server); returns violations and the count.
 */
export async function checkStorageParses(
  storage: ObjectStorage,
): Promise<{ violations: string[]; objects: number }> {
  const violations: string[] = [];
  let objects = 0;
  for (const info of await storage.list("")) {
    if (!info.key.endsWith(".json") && !info.key.endsWith(".jsonc")) continue;
    const obj = await storage.get(info.key);
    // Deleted between the list and the read (GC): nothing to parse.
    if (!obj) continue;
    objects++;
    const errors: ParseError[] = [];
    parse(obj.body.toString("utf8"), errors, { allowTrailingComma: true });
    if (errors.length > 0) violations.push(`${info.key} does not parse`);
  }
  return { violations, objects };
}
