// SPDX-License-Identifier: Apache-2.0
/**
 * Turns a validated raw config (snake_case, Go duration strings, defaults applied) into the
 * camelCase, millisecond, frozen `ServerConfig` components read.
 */
import { parseDurationMs } from "../shared/duration.js";
import { NstanceError } from "../shared/errors.js";
import { DEFAULT_GROUP_SIZE } from "./config-schema.js";
import { parseHostPort } from "./host-port.js";
import {
  type CertificateConfig,
  type FileConfig,
  type GroupConfig,
  type LeaderElectionConfig,
  LISTENER_NAMES,
  type ListenAddresses,
  type LoadBalancerConfig,
  type RawCertificateConfig,
  type RawFileConfig,
  type RawGroupConfig,
  type RawLeaderElectionConfig,
  type RawLoadBalancerConfig,
  type RawServerConfig,
  type RawTemplateConfig,
  type RawUserdataConfig,
  type ServerConfig,
  type TemplateConfig,
  type UserdataConfig,
} from "./server-config.js";

/** Milliseconds of a duration the schema already accepted. */
export function durationMs(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new NstanceError("internal", `unvalidated duration "${text}"`);
  return ms;
}

const optionalMs = (text: string | undefined): number | undefined =>
  text === undefined ? undefined : durationMs(text);
/** Expiry ages: `0s` means disabled, like an absent value. */
const ageMs = (text: string | undefined): number | undefined => {
  const v = optionalMs(text);
  return v === 0 ? undefined : v;
};
const mapValues = <A, B>(rec: Readonly<Record<string, A>>, fn: (a: A) => B): Record<string, B> =>
  Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, fn(v)]));

/** Compiles a file entry. */
export function compileFile(f: RawFileConfig): FileConfig {
  return {
    kind: f.kind,
    ...(f.source !== undefined && { source: f.source }),
    ...(f.template !== undefined && { template: f.template }),
    ...(f.key !== undefined && { key: { source: f.key.source, name: f.key.name } }),
  };
}

function compileUserdata(u: RawUserdataConfig | undefined): { userdata?: UserdataConfig } {
  return u === undefined
    ? {}
    : { userdata: { source: u.source, encoding: u.encoding, content: u.content } };
}

function compileLeaderElection(le: RawLeaderElectionConfig): LeaderElectionConfig {
  return {
    enabled: le.enabled,
    frequentIntervalMs: durationMs(le.frequent_interval),
    infrequentIntervalMs: durationMs(le.infrequent_interval),
    leaderTimeoutMs: durationMs(le.leader_timeout),
  };
}

function compileTemplate(t: RawTemplateConfig): TemplateConfig {
  return {
    kind: t.kind,
    arch: t.arch,
    files: mapValues(t.files, compileFile),
    args: t.args,
    ...compileUserdata(t.userdata),
    size: t.size,
    ...(t.instance_type !== undefined && { instanceType: t.instance_type }),
    ...(t.subnet_pool !== undefined && { subnetPool: t.subnet_pool }),
    vars: t.vars,
  };
}

/** Compiles a static group entry (defaults already applied by the schema). */
export function compileGroup(g: RawGroupConfig): GroupConfig {
  return {
    template: g.template ?? "",
    size: g.size ?? DEFAULT_GROUP_SIZE,
    ...(g.instance_type !== undefined && { instanceType: g.instance_type }),
    ...(g.subnet_pool !== undefined && { subnetPool: g.subnet_pool }),
    vars: g.vars ?? {},
    args: g.args ?? {},
    ...(g.drain_timeout !== undefined && { drainTimeoutMs: durationMs(g.drain_timeout) }),
    loadBalancers: g.load_balancers ?? [],
  };
}

function compileLoadBalancer(lb: RawLoadBalancerConfig): LoadBalancerConfig {
  return {
    provider: lb.provider,
    targetGroups: (lb.target_groups ?? []).map((t) => ({
      arn: t.arn,
      listenerPort: t.listener_port,
      targetPort: t.target_port,
      proxyPort: t.proxy_port,
    })),
    networkEndpointGroups: lb.network_endpoint_groups ?? [],
    frontends: (lb.frontends ?? []).map((f) => ({ ip: f.ip, port: f.port })),
  };
}

function compileCertificate(c: RawCertificateConfig): CertificateConfig {
  return {
    kind: c.kind,
    ...(c.cn !== undefined && { cn: c.cn }),
    organization: c.organization,
    dns: c.dns,
    ip: c.ip,
    uri: c.uri,
    country: c.country,
    province: c.province,
    locality: c.locality,
    street: c.street,
    postalCode: c.postal_code,
    ttlHours: c.ttl,
  };
}

function compileAdvertise(raw: RawServerConfig["server"]): ListenAddresses {
  const out = {} as Record<(typeof LISTENER_NAMES)[number], string>;
  for (const name of LISTENER_NAMES) {
    // Unset: the bind port with an empty (auto-detected) host.
    out[name] = raw.advertise[name] ?? `:${parseHostPort(raw.bind[name])?.port ?? 0}`;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Compiles a validated raw config; the result is deeply frozen and shares nothing with `raw`. */
export function compileServerConfig(rawInput: RawServerConfig): ServerConfig {
  const raw = structuredClone(rawInput);
  const { server, cluster, shard } = raw;
  const config: ServerConfig = {
    server: {
      bind: { ...server.bind },
      advertise: compileAdvertise(server),
      files: mapValues(server.files, compileFile),
    },
    cluster: {
      id: cluster.id,
      secrets: {
        provider: cluster.secrets.provider,
        prefix: cluster.secrets.prefix,
        ...(cluster.secrets.encryption_key !== undefined && {
          encryptionKey: {
            provider: cluster.secrets.encryption_key.provider,
            source: cluster.secrets.encryption_key.source,
          },
        }),
      },
      leaderElection: compileLeaderElection(cluster.leader_election),
    },
    shard: {
      id: shard.id,
      infra: { ...shard.infra },
      subnetPools: shard.subnet_pools,
      dynamicSubnetPools: shard.dynamic_subnet_pools,
      requestTimeoutMs: durationMs(shard.request_timeout),
      createRateLimitMs: durationMs(shard.create_rate_limit),
      healthCheckIntervalMs: durationMs(shard.health_check_interval),
      defaultDrainTimeoutMs: durationMs(shard.default_drain_timeout),
      shutdownTimeoutMs: durationMs(shard.shutdown_timeout),
      garbageCollection: {
        intervalMs: durationMs(shard.garbage_collection.interval),
        registrationTimeoutMs: durationMs(shard.garbage_collection.registration_timeout),
        deletedRecordRetentionMs: durationMs(shard.garbage_collection.deleted_record_retention),
      },
      failureDetection: {
        sweepIntervalMs: durationMs(shard.failure_detection.sweep_interval),
        missedReports: shard.failure_detection.missed_reports,
        statusTimeoutMs: durationMs(shard.failure_detection.status_timeout),
        keepaliveTimeMs: durationMs(shard.failure_detection.keepalive_time),
        keepaliveTimeoutMs: durationMs(shard.failure_detection.keepalive_timeout),
        maxUnhealthyFraction: shard.failure_detection.max_unhealthy_percent / 100,
        maxUnhealthyCount: shard.failure_detection.max_unhealthy_count,
        decisionRetentionMs: durationMs(shard.failure_detection.decision_retention),
      },
      expiry: {
        ...optionalEntry("eligibleAgeMs", ageMs(shard.expiry.eligible_age)),
        ...optionalEntry("forcedAgeMs", ageMs(shard.expiry.forced_age)),
        ...optionalEntry("ondemandAgeMs", ageMs(shard.expiry.ondemand_age)),
      },
      leaderElection: compileLeaderElection(shard.leader_election),
    },
    loadBalancers: mapValues(raw.load_balancers, compileLoadBalancer),
    certificates: mapValues(raw.certificates, compileCertificate),
    defaults: {
      args: raw.defaults.args,
      vars: raw.defaults.vars,
      ...compileUserdata(raw.defaults.userdata),
    },
    templates: mapValues(raw.templates, compileTemplate),
    groups: mapValues(raw.groups, (groups) => mapValues(groups, compileGroup)),
  };
  return deepFreeze(config);
}

function optionalEntry<K extends string>(
  key: K,
  value: number | undefined,
): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}
