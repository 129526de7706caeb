// SPDX-License-Identifier: Apache-2.0
/**
 * The merge of static groups and the dynamic groups file (seed 001, reference §2.4). For a key in
 * both, only `size`, `instance_type` and `vars` (per key) come from the dynamic entry; setting a
 * restricted field to another value is a problem. Dynamic-only groups are used as they are.
 */
import { formatDurationMs, parseDurationMs } from "../shared/duration.js";
import { canonicalJson } from "./canonical-json.js";
import { infraHash, runtimeHash } from "./config-hashes.js";
import { DEFAULT_GROUP_SIZE } from "./config-schema.js";
import { deepMerge } from "./deep-merge.js";
import { checkGroupRefs, type GroupContext } from "./group-checks.js";
import { ownValue } from "./own-value.js";
import type { PathProblem } from "./path-problem.js";
import {
  type DynamicGroups,
  type EffectiveGroup,
  type GroupConfig,
  type JsonObject,
  type RawGroupConfig,
  RESTRICTED_GROUP_FIELDS,
  type ServerConfig,
} from "./server-config.js";

/** Effective groups, or the problems (paths relative to the groups file) that prevent them. */
export interface MergeResult {
  groups: EffectiveGroup[];
  problems: PathProblem[];
}

/** The reference context of a compiled config, for checking dynamic groups. */
export function compiledGroupContext(config: ServerConfig): GroupContext {
  return {
    provider: config.shard.infra.provider,
    templates: new Map(
      Object.entries(config.templates).map(([name, t]) => [
        name,
        { subnetPool: t.subnetPool, instanceType: t.instanceType, args: t.args },
      ]),
    ),
    subnetPools: new Set(Object.keys(config.shard.subnetPools)),
    loadBalancers: new Set(Object.keys(config.loadBalancers)),
    dynamicSubnetPools: config.shard.dynamicSubnetPools,
    defaultArgs: config.defaults.args,
  };
}

const sortedKeys = (
  ...objs: ReadonlyArray<Readonly<Record<string, unknown>> | undefined>
): string[] => [...new Set(objs.flatMap((o) => (o ? Object.keys(o) : [])))].sort();

/** The static value of a restricted field, in the groups file's terms, for comparison. */
function staticValue(
  config: ServerConfig,
  s: GroupConfig,
  field: (typeof RESTRICTED_GROUP_FIELDS)[number],
): unknown {
  switch (field) {
    case "template":
      return s.template;
    case "subnet_pool":
      return s.subnetPool ?? config.templates[s.template]?.subnetPool;
    case "args":
      return s.args;
    case "drain_timeout":
      return s.drainTimeoutMs ?? config.shard.defaultDrainTimeoutMs;
    case "load_balancers":
      return [...s.loadBalancers].sort();
  }
}

function dynamicValue(d: RawGroupConfig, field: (typeof RESTRICTED_GROUP_FIELDS)[number]): unknown {
  switch (field) {
    case "drain_timeout":
      return d.drain_timeout === undefined ? undefined : parseDurationMs(d.drain_timeout);
    case "load_balancers":
      return d.load_balancers === undefined ? undefined : [...d.load_balancers].sort();
    default:
      return d[field];
  }
}

/** Problems of a dynamic entry that overrides static group `s`: restricted fields that differ. */
export function restrictedFieldProblems(
  config: ServerConfig,
  tenant: string,
  key: string,
  s: GroupConfig,
  d: RawGroupConfig,
): PathProblem[] {
  const out: PathProblem[] = [];
  for (const field of RESTRICTED_GROUP_FIELDS) {
    const dv = dynamicValue(d, field);
    if (dv === undefined) continue;
    const sv = staticValue(config, s, field);
    if (canonicalJson(dv) === canonicalJson(sv)) continue;
    const shown =
      field === "drain_timeout"
        ? JSON.stringify(formatDurationMs(sv as number))
        : canonicalJson(sv);
    out.push({
      path: [tenant, key, field],
      message: `"${field}" is restricted for static groups and cannot be changed here (static value: ${shown}); only size, instance_type and vars can be overridden`,
    });
  }
  return out;
}

interface GroupFields {
  template: string;
  size: number;
  instanceType: string | undefined;
  subnetPool: string;
  vars: Readonly<Record<string, string>>;
  args: Readonly<JsonObject>;
  drainTimeoutMs: number;
  loadBalancers: readonly string[];
}

/** Resolves one group against its template and the defaults, and hashes it. */
function resolve(
  config: ServerConfig,
  tenant: string,
  key: string,
  f: GroupFields,
  flags: { isStatic: boolean; overridden: boolean },
): EffectiveGroup {
  const tpl = config.templates[f.template]!;
  const vars = { ...config.defaults.vars, ...tpl.vars, ...f.vars };
  const args = deepMerge(config.defaults.args, tpl.args, f.args);
  const userdata = tpl.userdata ?? config.defaults.userdata;
  return {
    tenant,
    key,
    ...flags,
    template: f.template,
    templateConfig: tpl,
    size: f.size,
    ...(f.instanceType !== undefined && { instanceType: f.instanceType }),
    subnetPool: f.subnetPool,
    vars,
    args,
    kind: tpl.kind,
    arch: tpl.arch,
    files: tpl.files,
    ...(userdata !== undefined && { userdata }),
    drainTimeoutMs: f.drainTimeoutMs,
    loadBalancers: f.loadBalancers,
    runtimeHash: runtimeHash({ vars, files: tpl.files }),
    infraHash: infraHash({
      args,
      instanceType: f.instanceType,
      subnetPool: f.subnetPool,
      userdata,
      kind: tpl.kind,
      arch: tpl.arch,
    }),
  };
}

/** Merges static and dynamic groups; problems are reported instead of groups that cannot be built. */
export function mergeGroups(config: ServerConfig, dynamic: DynamicGroups): MergeResult {
  const groups: EffectiveGroup[] = [];
  const problems: PathProblem[] = [];
  const ctx = compiledGroupContext(config);
  for (const tenant of sortedKeys(config.groups, dynamic)) {
    const staticGroups = ownValue(config.groups, tenant) ?? {};
    const dynamicGroups = ownValue(dynamic, tenant) ?? {};
    for (const key of sortedKeys(staticGroups, dynamicGroups)) {
      const s = ownValue(staticGroups, key);
      const d = ownValue(dynamicGroups, key);
      if (s !== undefined) {
        const restricted =
          d === undefined ? [] : restrictedFieldProblems(config, tenant, key, s, d);
        problems.push(...restricted);
        const tpl = config.templates[s.template]!;
        groups.push(
          resolve(
            config,
            tenant,
            key,
            {
              template: s.template,
              size: d?.size ?? s.size,
              instanceType: d?.instance_type ?? s.instanceType ?? tpl.instanceType,
              subnetPool: (s.subnetPool ?? tpl.subnetPool)!,
              vars: { ...s.vars, ...d?.vars },
              args: s.args,
              drainTimeoutMs: s.drainTimeoutMs ?? config.shard.defaultDrainTimeoutMs,
              loadBalancers: s.loadBalancers,
            },
            { isStatic: true, overridden: d !== undefined },
          ),
        );
        continue;
      }
      if (d === undefined) continue;
      const before = problems.length;
      checkGroupRefs(ctx, d, [tenant, key], problems, true);
      if (problems.length > before) continue;
      const tpl = config.templates[d.template!]!;
      groups.push(
        resolve(
          config,
          tenant,
          key,
          {
            template: d.template!,
            size: d.size ?? DEFAULT_GROUP_SIZE,
            instanceType: d.instance_type ?? tpl.instanceType,
            subnetPool: (d.subnet_pool ?? tpl.subnetPool)!,
            vars: d.vars ?? {},
            args: d.args ?? {},
            drainTimeoutMs:
              d.drain_timeout === undefined
                ? config.shard.defaultDrainTimeoutMs
                : parseDurationMs(d.drain_timeout)!,
            loadBalancers: d.load_balancers ?? [],
          },
          { isStatic: false, overridden: false },
        ),
      );
    }
  }
  return { groups, problems };
}
