// SPDX-License-Identifier: Apache-2.0
/**
 * The leader lockfile: one small JSON object per election, written only with conditional puts.
 * Its bytes are unique per write (a new term, or a strictly later `last_updated` within a term),
 * which matters because md5-based etags would otherwise repeat for identical content.
 */
import { NstanceError } from "../shared/errors.js";

/** The lockfile record as stored (snake_case keys, as in the seed and the reference). */
export interface LockRecord {
  /** `--id` of the server that holds (or last held) the lease. */
  leader_id: string;
  /** Advertised `host:port` of the leader's election endpoint. */
  leader_addr: string;
  /** Wall-clock time of the last write, RFC 3339 with milliseconds (`2025-01-02T03:04:05.678Z`). */
  last_updated: string;
  /** Leadership term: grows by one on every change of leader, never reused. */
  term: number;
  /** True once the leader resigned; a standby may take over at once. */
  released: boolean;
}

/** Thrown by {@link parseLockRecord} for a lockfile that is not a valid record. */
export class CorruptLockfileError extends NstanceError {
  /** The highest `term` that could still be read from the broken record, if any. */
  readonly salvagedTerm: number | undefined;
  constructor(message: string, salvagedTerm: number | undefined, options?: ErrorOptions) {
    super("invalid_argument", `corrupt lockfile: ${message}`, options);
    this.salvagedTerm = salvagedTerm;
    this.name = "CorruptLockfileError";
  }
}

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Formats epoch milliseconds as the lockfile's RFC 3339 UTC time with milliseconds. */
export function formatLockTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Parses a lockfile time; `undefined` unless it is RFC 3339 UTC with exactly three fraction digits. */
export function parseLockTime(text: string): number | undefined {
  if (!RFC3339_MS.test(text)) return undefined;
  const ms = Date.parse(text);
  // Date.parse accepts 2025-02-30 by rolling over; a round trip rejects such dates.
  return Number.isFinite(ms) && formatLockTime(ms) === text ? ms : undefined;
}

/**
 * The `last_updated` for the next write by the same holder: the wall clock, but always at least
 * 1 ms after the previous value, so two writes never have the same bytes even if the clock steps back.
 */
export function nextLastUpdatedMs(previous: string | undefined, wallNowMs: number): number {
  const prev = previous === undefined ? undefined : parseLockTime(previous);
  return prev === undefined ? wallNowMs : Math.max(wallNowMs, prev + 1);
}

/** Serialises a record (fixed key order, one line, trailing newline). */
export function serializeLockRecord(r: LockRecord): string {
  const ordered: LockRecord = {
    leader_id: r.leader_id,
    leader_addr: r.leader_addr,
    last_updated: r.last_updated,
    term: r.term,
    released: r.released,
  };
  return `${JSON.stringify(ordered)}\n`;
}

/** True when two records have the same content (and so, being unique per write, the same version). */
export function sameLockRecord(a: LockRecord, b: LockRecord): boolean {
  return (
    a.leader_id === b.leader_id &&
    a.leader_addr === b.leader_addr &&
    a.last_updated === b.last_updated &&
    a.term === b.term &&
    a.released === b.released
  );
}

/**
 * Parses a lockfile strictly: every field present with its type, a positive integer term and an
 * RFC 3339 time. Unknown extra fields are ignored, so a newer writer that adds one is not mistaken
 * for a corrupt (takeable) lockfile. Throws {@link CorruptLockfileError}.
 */
export function parseLockRecord(body: Buffer | string): LockRecord {
  const text = typeof body === "string" ? body : body.toString("utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CorruptLockfileError("not JSON", undefined, { cause: err });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CorruptLockfileError("not a JSON object", undefined);
  }
  const o = value as Record<string, unknown>;
  const salvaged =
    typeof o.term === "number" && Number.isSafeInteger(o.term) && o.term > 0 ? o.term : undefined;
  const fail = (message: string): never => {
    throw new CorruptLockfileError(message, salvaged);
  };
  if (typeof o.leader_id !== "string" || o.leader_id === "") {
    fail("leader_id must be a non-empty string");
  }
  if (typeof o.leader_addr !== "string") fail("leader_addr must be a string");
  if (typeof o.last_updated !== "string" || parseLockTime(o.last_updated) === undefined) {
    fail(
      `last_updated must be an RFC 3339 UTC time with milliseconds, got ${JSON.stringify(o.last_updated)}`,
    );
  }
  if (salvaged === undefined)
    fail(`term must be a positive integer, got ${JSON.stringify(o.term)}`);
  if (typeof o.released !== "boolean") fail("released must be a boolean");
  return {
    leader_id: o.leader_id as string,
    leader_addr: o.leader_addr as string,
    last_updated: o.last_updated as string,
    term: salvaged as number,
    released: o.released as boolean,
  };
}
