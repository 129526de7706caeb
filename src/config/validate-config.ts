// SPDX-License-Identifier: Apache-2.0
/**
 * Cross-reference rules of the static config that a schema cannot express: distinct listen
 * addresses, subnet pool references, ordering of timings, load balancer and certificate references,
 * group templates. Runs on the schema-checked value, which may still be incomplete when the schema
 * found problems, so every read is defensive.
 */
import { parseDurationMs } from "../shared/duration.js";
import { checkGroupRefs, type GroupContext, unknownName } from "./group-checks.js";
import { addressesConflict, type HostPort, parseHostPort } from "./host-port.js";
import type { PathProblem, PathSegment } from "./path-problem.js";
import { LISTENER_NAMES, type RawServerConfig } from "./server-config.js";

/** A value that may be missing anywhere (the schema check drops invalid parts). */
export type Loose<T> =
  T extends ReadonlyArray<infer U>
    ? Array<Loose<U> | undefined>
    : T extends object
      ? { [K in keyof T]?: Loose<T[K]> }
      : T;

const ms = (text: string | undefined): number | undefined =>
  text === undefined ? undefined : parseDurationMs(text);

/** Every cross-reference problem of a schema-checked static config. */
export function validateServerConfig(raw: Loose<RawServerConfig>): PathProblem[] {
  const problems: PathProblem[] = [];
  checkBindAddresses(raw, problems);
  checkSubnetPools(raw, problems);
  checkTimings(raw, problems);
  checkLoadBalancers(raw, problems);
  checkTemplates(raw, problems);
  checkGroups(raw, problems);
  return problems;
}

function checkBindAddresses(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const bind = raw.server?.bind ?? {};
  const seen: Array<{ name: string; text: string; addr: HostPort }> = [];
  for (const name of LISTENER_NAMES) {
    const text = bind[name];
    const addr = text === undefined ? undefined : parseHostPort(text);
    if (text === undefined || addr === undefined) continue;
    const clash = seen.find((s) => addressesConflict(s.addr, addr));
    if (clash) {
      problems.push({
        path: ["server", "bind", name],
        message: `"${text}" conflicts with server.bind.${clash.name} ("${clash.text}"): each listener needs its own port`,
      });
    }
    seen.push({ name, text, addr });
  }
}

function checkSubnetPools(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const pools = raw.shard?.subnet_pools ?? {};
  const owner = new Map<string, string>();
  for (const [pool, subnets] of Object.entries(pools)) {
    (subnets ?? []).forEach((subnet, i) => {
      if (subnet === undefined) return;
      const first = owner.get(subnet);
      if (first !== undefined && first !== pool) {
        problems.push({
          path: ["shard", "subnet_pools", pool, i],
          message: `subnet "${subnet}" is already in pool "${first}": a subnet may belong to one pool only`,
        });
      }
      if (first === undefined) owner.set(subnet, pool);
    });
  }
  (raw.shard?.dynamic_subnet_pools ?? []).forEach((pool, i) => {
    if (pool !== undefined && !Object.hasOwn(pools, pool)) {
      problems.push({
        path: ["shard", "dynamic_subnet_pools", i],
        message: unknownName("subnet pool", pool, Object.keys(pools)),
      });
    }
  });
}

function checkTimings(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const shard = raw.shard ?? {};
  const gc = shard.garbage_collection ?? {};
  const gcInterval = ms(gc.interval);
  const regTimeout = ms(gc.registration_timeout);
  if (gcInterval !== undefined && regTimeout !== undefined && regTimeout <= gcInterval) {
    problems.push({
      path: ["shard", "garbage_collection", "registration_timeout"],
      message: `must be greater than interval ("${gc.registration_timeout}" <= "${gc.interval}")`,
    });
  }
  const expiry = shard.expiry ?? {};
  const eligible = ms(expiry.eligible_age);
  const forced = ms(expiry.forced_age);
  if (eligible && forced && eligible >= forced) {
    problems.push({
      path: ["shard", "expiry", "eligible_age"],
      message: `must be less than forced_age when both are set ("${expiry.eligible_age}" >= "${expiry.forced_age}")`,
    });
  }
  const elections: Array<[PathSegment[], (typeof shard)["leader_election"]]> = [
    [["cluster", "leader_election"], raw.cluster?.leader_election],
    [["shard", "leader_election"], shard.leader_election],
  ];
  for (const [path, le] of elections) {
    const frequent = ms(le?.frequent_interval);
    const infrequent = ms(le?.infrequent_interval);
    const timeout = ms(le?.leader_timeout);
    if (frequent !== undefined && timeout !== undefined && timeout <= frequent) {
      problems.push({
        path: [...path, "leader_timeout"],
        message: `must be greater than frequent_interval ("${le?.leader_timeout}" <= "${le?.frequent_interval}")`,
      });
    }
    if (frequent !== undefined && infrequent !== undefined && infrequent < frequent) {
      problems.push({
        path: [...path, "infrequent_interval"],
        message: `must not be less than frequent_interval ("${le?.infrequent_interval}" < "${le?.frequent_interval}")`,
      });
    }
  }
}

function checkLoadBalancers(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const provider = raw.shard?.infra?.provider;
  for (const [key, lb] of Object.entries(raw.load_balancers ?? {})) {
    if (provider !== undefined && lb?.provider !== undefined && lb.provider !== provider) {
      problems.push({
        path: ["load_balancers", key, "provider"],
        message: `load balancer provider "${lb.provider}" does not match shard.infra.provider "${provider}"`,
      });
    }
  }
}

function checkTemplates(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const pools = Object.keys(raw.shard?.subnet_pools ?? {});
  const certificates = Object.keys(raw.certificates ?? {});
  for (const [name, tpl] of Object.entries(raw.templates ?? {})) {
    if (tpl?.subnet_pool !== undefined && !pools.includes(tpl.subnet_pool)) {
      problems.push({
        path: ["templates", name, "subnet_pool"],
        message: unknownName("subnet pool", tpl.subnet_pool, pools),
      });
    }
    for (const [file, f] of Object.entries(tpl?.files ?? {})) {
      if (
        f?.kind === "certificate" &&
        typeof f.template === "string" &&
        !certificates.includes(f.template)
      ) {
        problems.push({
          path: ["templates", name, "files", file, "template"],
          message: unknownName("certificate template", f.template, certificates),
        });
      }
    }
  }
}

/** The reference context of a schema-checked static config. */
function groupContext(raw: Loose<RawServerConfig>): GroupContext {
  return {
    provider: raw.shard?.infra?.provider,
    templates: new Map(
      Object.entries(raw.templates ?? {}).map(([name, t]) => [
        name,
        {
          subnetPool: t?.subnet_pool,
          instanceType: t?.instance_type,
          args: t?.args as GroupContext["defaultArgs"],
        },
      ]),
    ),
    subnetPools: new Set(Object.keys(raw.shard?.subnet_pools ?? {})),
    loadBalancers: new Set(Object.keys(raw.load_balancers ?? {})),
    dynamicSubnetPools: [],
    defaultArgs: raw.defaults?.args as GroupContext["defaultArgs"],
  };
}

function checkGroups(raw: Loose<RawServerConfig>, problems: PathProblem[]): void {
  const ctx = groupContext(raw);
  for (const [tenant, groups] of Object.entries(raw.groups ?? {})) {
    for (const [key, g] of Object.entries(groups ?? {})) {
      if (g === undefined) continue;
      checkGroupRefs(
        ctx,
        {
          template: g.template,
          subnet_pool: g.subnet_pool,
          instance_type: g.instance_type,
          args: g.args as GroupContext["defaultArgs"],
          load_balancers: (g.load_balancers ?? []).filter((x): x is string => x !== undefined),
        },
        ["groups", tenant, key],
        problems,
        false,
      );
    }
  }
}
