// SPDX-License-Identifier: Apache-2.0
/**
 * Pure edits of the dynamic groups file for the Operator API (UpsertGroup, DeleteGroup): each
 * returns the new file content or throws, and never touches storage. The caller writes the result
 * with a conditional put.
 */
import { ConfigError, NstanceError } from "../shared/errors.js";
import { checkSchema } from "./check-schema.js";
import { GROUPS_SCHEMA } from "./config-schema.js";
import { deepMerge } from "./deep-merge.js";
import { GROUPS_PATH_PREFIX } from "./load-config.js";
import { mergeGroups, restrictedFieldProblems } from "./merge-groups.js";
import { ownValue } from "./own-value.js";
import { formatPath, type PathProblem } from "./path-problem.js";
import type { DynamicGroups, RawGroupConfig, ServerConfig } from "./server-config.js";

/** The fields of an upsert; absent fields are left as they are. */
export type GroupUpsert = RawGroupConfig;

/** Field order of a serialised group (the schema's order). */
const FIELD_ORDER: ReadonlyArray<keyof RawGroupConfig> = [
  "template",
  "size",
  "instance_type",
  "subnet_pool",
  "vars",
  "args",
  "drain_timeout",
  "load_balancers",
];

function toConfigError(problems: readonly PathProblem[]): ConfigError {
  return new ConfigError(
    problems.map((p) => ({ path: formatPath(p.path, GROUPS_PATH_PREFIX), message: p.message })),
  );
}

function defined(g: RawGroupConfig): RawGroupConfig {
  return Object.fromEntries(Object.entries(g).filter(([, v]) => v !== undefined)) as RawGroupConfig;
}

function withEntry(
  current: DynamicGroups,
  tenant: string,
  key: string,
  entry: RawGroupConfig | undefined,
): DynamicGroups {
  const groups = { ...ownValue(current, tenant) };
  if (entry === undefined) delete groups[key];
  else groups[key] = entry;
  const next = { ...current, [tenant]: groups };
  if (Object.keys(groups).length === 0) delete next[tenant];
  return next;
}

/**
 * Creates or updates group `tenant/key` in the dynamic groups.
 * - A static group: only `size`, `instance_type` and `vars` (merged per key) are stored; any
 *   other field must equal the static value.
 * - An existing dynamic group: given fields replace stored ones; `vars` merge per key, `args` deep-merge.
 * - A new group: `template` is required; the subnet pool defaults to (and is pinned from) the template's.
 * Throws ConfigError (code `invalid_argument`) naming every problem.
 */
export function applyGroupUpsert(
  current: DynamicGroups,
  config: ServerConfig,
  tenant: string,
  key: string,
  update: GroupUpsert,
): DynamicGroups {
  const upd = defined(update);
  const checked = checkSchema(GROUPS_SCHEMA, { [tenant]: { [key]: upd } });
  if (checked.problems.length > 0) throw toConfigError(checked.problems);

  const staticGroup = ownValue(ownValue(config.groups, tenant), key);
  const existing = ownValue(ownValue(current, tenant), key);
  let entry: RawGroupConfig;
  if (staticGroup !== undefined) {
    const restricted = restrictedFieldProblems(config, tenant, key, staticGroup, upd);
    if (restricted.length > 0) throw toConfigError(restricted);
    entry = defined({
      size: upd.size ?? existing?.size,
      instance_type: upd.instance_type ?? existing?.instance_type,
      vars: existing?.vars || upd.vars ? { ...existing?.vars, ...upd.vars } : undefined,
    });
  } else if (existing !== undefined) {
    entry = defined({
      ...existing,
      ...upd,
      vars: existing.vars || upd.vars ? { ...existing.vars, ...upd.vars } : undefined,
      args: existing.args || upd.args ? deepMerge(existing.args, upd.args) : undefined,
    });
  } else {
    const pinnedPool =
      upd.template === undefined ? undefined : ownValue(config.templates, upd.template)?.subnetPool;
    entry = defined({ ...upd, subnet_pool: upd.subnet_pool ?? pinnedPool });
  }

  const next = withEntry(current, tenant, key, entry);
  const own = mergeGroups(config, next).problems.filter(
    (p) => p.path[0] === tenant && p.path[1] === key,
  );
  if (own.length > 0) throw toConfigError(own);
  return next;
}

/**
 * Deletes group `tenant/key` from the dynamic groups. For a static group with an override, only
 * the override goes (the group reverts to its static settings). Throws NstanceError `not_found`
 * for an unknown group and `invalid_argument` for a static group without an override.
 */
export function applyGroupDelete(
  current: DynamicGroups,
  config: ServerConfig,
  tenant: string,
  key: string,
): DynamicGroups {
  if (ownValue(ownValue(current, tenant), key) !== undefined) {
    return withEntry(current, tenant, key, undefined);
  }
  if (ownValue(ownValue(config.groups, tenant), key) !== undefined) {
    throw new NstanceError(
      "invalid_argument",
      `group ${tenant}/${key} is defined in the static config; remove it there (the Operator API can only delete dynamic groups and overrides)`,
    );
  }
  throw new NstanceError("not_found", `group ${tenant}/${key} does not exist`);
}

/** The dynamic groups as pretty-printed JSON: tenants and groups sorted, fields in schema order. */
export function serializeDynamicGroups(d: DynamicGroups): string {
  const sorted: Record<string, Record<string, Record<string, unknown>>> = {};
  for (const tenant of Object.keys(d).sort()) {
    const groups = d[tenant]!;
    const out: Record<string, Record<string, unknown>> = {};
    for (const key of Object.keys(groups).sort()) {
      const g = groups[key]!;
      out[key] = Object.fromEntries(
        FIELD_ORDER.filter((f) => g[f] !== undefined).map((f) => [f, g[f]]),
      );
    }
    if (Object.keys(out).length > 0) sorted[tenant] = out;
  }
  return `${JSON.stringify(sorted, null, 2)}\n`;
}
