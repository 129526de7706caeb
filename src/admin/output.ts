// SPDX-License-Identifier: Apache-2.0
/**
 * Rendering for the admin CLI: aligned tables and key/value blocks for people, JSON (snake_case
 * keys, one document per command) for scripts. Pure functions from data to text.
 */
import type {
  ConfigRefresh,
  ConfigStatus,
  GroupInfo,
  ShardResult,
} from "./service/admin-service.js";

/** Shown in a table cell for an empty value. */
export const EMPTY_CELL = "-";

/**
 * Renders rows under a header as columns separated by two spaces, each as wide as its widest
 * cell; the last column is not padded. Empty cells show {@link EMPTY_CELL}.
 */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cells = [headers, ...rows].map((row) =>
    headers.map((_, i) => (row[i] === undefined || row[i] === "" ? EMPTY_CELL : row[i]!)),
  );
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** Renders `label: value` lines with the values aligned. */
export function renderKeyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v === "" ? EMPTY_CELL : v}\n`).join("");
}

/** Pretty-printed JSON with a trailing newline. */
export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The `error: …` line for stderr. */
export function renderError(message: string): string {
  return `error: ${message}\n`;
}

/** `a=1, b=2`, sorted by key. */
export function formatVars(vars: Readonly<Record<string, string>>): string {
  return Object.keys(vars)
    .sort()
    .map((k) => `${k}=${vars[k]}`)
    .join(", ");
}

/** A group as JSON. */
export function groupJson(g: GroupInfo): Record<string, unknown> {
  return {
    key: g.key,
    tenant: g.tenant,
    template: g.template,
    size: g.size,
    actual_size: g.actualSize,
    instance_type: g.instanceType,
    subnet_pool: g.subnetPool,
    vars: g.vars,
    is_static: g.isStatic,
    etag: g.etag,
    provider_ids: g.providerIds,
  };
}

/** A config status as JSON. */
export function configStatusJson(s: ConfigStatus): Record<string, unknown> {
  return {
    etag: s.etag,
    size: s.sizeBytes,
    last_modified: s.lastModified?.toISOString() ?? null,
  };
}

/** A config refresh as JSON. */
export function configRefreshJson(r: ConfigRefresh): Record<string, unknown> {
  return { updated: r.updated, prev_etag: r.prevEtag, etag: r.etag };
}

/**
 * Per-shard results as one JSON document: `{"results": [{shard, address, ok, <key>: …}]}`;
 * failed shards carry `error: {code, message}` instead of `<key>`.
 */
export function shardResultsJson<T>(
  results: readonly ShardResult<T>[],
  key: string,
  toJson: (value: T) => unknown,
): string {
  return renderJson({
    results: results.map((r) =>
      r.ok
        ? { shard: r.shard, address: r.address, ok: true, [key]: toJson(r.value) }
        : {
            shard: r.shard,
            address: r.address,
            ok: false,
            error: { code: r.error.code, message: r.error.detail },
          },
    ),
  });
}

/** Table columns for groups. */
export const GROUP_TABLE_HEADERS = [
  "SHARD",
  "GROUP",
  "TEMPLATE",
  "SIZE",
  "ACTUAL",
  "INSTANCE_TYPE",
  "SUBNET_POOL",
  "STATIC",
] as const;

/** One group table row. */
export function groupRow(shard: string, g: GroupInfo): string[] {
  return [
    shard,
    g.key,
    g.template,
    String(g.size),
    String(g.actualSize),
    g.instanceType,
    g.subnetPool,
    g.isStatic ? "yes" : "no",
  ];
}

/** A group's details as key/value lines. */
export function renderGroupDetails(shard: string, g: GroupInfo): string {
  return renderKeyValues([
    ["Shard", shard],
    ["Group", g.key],
    ["Tenant", g.tenant],
    ["Template", g.template],
    ["Size", String(g.size)],
    ["Actual size", String(g.actualSize)],
    ["Instance type", g.instanceType],
    ["Subnet pool", g.subnetPool],
    ["Static", g.isStatic ? "yes" : "no"],
    ["Vars", formatVars(g.vars)],
    ["Provider IDs", g.providerIds.join(", ")],
    ["Etag", g.etag],
  ]);
}
