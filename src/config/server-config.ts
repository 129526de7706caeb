// SPDX-License-Identifier: Apache-2.0
/**
 * Configuration types. `Raw…` types mirror the JSONC files (snake_case, durations as Go strings)
 * after schema defaults were applied; `ServerConfig` is the compiled form every component reads:
 * camelCase, durations in milliseconds, deeply readonly. The schema lives in config-schema.ts.
 */

/** Any JSON value (free-form `args`, provider `options`, file templates). */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** Infrastructure providers (`shard.infra.provider`). */
export const INFRA_PROVIDERS = ["local", "fake", "aws", "google", "proxmox"] as const;
/** One of {@link INFRA_PROVIDERS}. */
export type InfraProvider = (typeof INFRA_PROVIDERS)[number];
/** Secrets stores (`cluster.secrets.provider`). */
export const SECRETS_PROVIDERS = ["object-storage", "memory"] as const;
/** One of {@link SECRETS_PROVIDERS}. */
export type SecretsProvider = (typeof SECRETS_PROVIDERS)[number];
/** Where the secrets encryption key comes from. */
export const ENCRYPTION_KEY_PROVIDERS = ["env", "file"] as const;
/** One of {@link ENCRYPTION_KEY_PROVIDERS}. */
export type EncryptionKeyProvider = (typeof ENCRYPTION_KEY_PROVIDERS)[number];
/** CPU architectures of templates. */
export const ARCHES = ["amd64", "arm64"] as const;
/** One of {@link ARCHES}. */
export type Arch = (typeof ARCHES)[number];
/** Kinds of files delivered to agents (and written by the server for `server.files`). */
export const FILE_KINDS = ["secret", "storage", "certificate", "env", "json", "string"] as const;
/** One of {@link FILE_KINDS}. */
export type FileKind = (typeof FILE_KINDS)[number];
/** Load balancer backends; each must match `shard.infra.provider`. */
export const LOAD_BALANCER_PROVIDERS = ["aws", "google", "local", "fake"] as const;
/** One of {@link LOAD_BALANCER_PROVIDERS}. */
export type LoadBalancerProvider = (typeof LOAD_BALANCER_PROVIDERS)[number];
/** Certificate template kinds (extended key usage). */
export const CERTIFICATE_KINDS = ["client", "server"] as const;
/** One of {@link CERTIFICATE_KINDS}. */
export type CertificateKind = (typeof CERTIFICATE_KINDS)[number];
/** Userdata sources. */
export const USERDATA_SOURCES = ["inline", "url"] as const;
/** Userdata encodings. */
export const USERDATA_ENCODINGS = ["plain", "base64", "gzip", "base64+gzip"] as const;
/** The five listeners of a server, in port order (8990 … 8994). */
export const LISTENER_NAMES = ["health", "election", "registration", "operator", "agent"] as const;
/** One of {@link LISTENER_NAMES}. */
export type ListenerName = (typeof LISTENER_NAMES)[number];
/** Group fields a dynamic groups entry may not change on a static group. */
export const RESTRICTED_GROUP_FIELDS = [
  "template",
  "subnet_pool",
  "args",
  "drain_timeout",
  "load_balancers",
] as const;

// ---------------------------------------------------------------------------------------------
// Raw shapes (the files, after defaults)

/** A file delivered to agents or written by the server, as in the config file. */
export interface RawFileConfig {
  kind: FileKind;
  source?: string;
  template?: JsonValue;
  key?: { source: "agent"; name: string };
}

/** Userdata of a template or of `defaults`, as in the config file. */
export interface RawUserdataConfig {
  source: (typeof USERDATA_SOURCES)[number];
  encoding: (typeof USERDATA_ENCODINGS)[number];
  content: string;
}

/** Leader election timings, as in the config file. */
export interface RawLeaderElectionConfig {
  enabled: boolean;
  frequent_interval: string;
  infrequent_interval: string;
  leader_timeout: string;
}

/** A template, as in the config file. */
export interface RawTemplateConfig {
  kind: string;
  arch: Arch;
  files: Record<string, RawFileConfig>;
  args: JsonObject;
  userdata?: RawUserdataConfig;
  size: number;
  instance_type?: string;
  subnet_pool?: string;
  vars: Record<string, string>;
}

/**
 * A group entry. In the static config `template` is required and `size`, `vars`, `args`,
 * `load_balancers` are defaulted; in the dynamic groups file every field is optional and an absent
 * field means "not overridden".
 */
export interface RawGroupConfig {
  template?: string;
  size?: number;
  instance_type?: string;
  subnet_pool?: string;
  vars?: Record<string, string>;
  args?: JsonObject;
  drain_timeout?: string;
  load_balancers?: string[];
}

/** A load balancer, as in the config file. */
export interface RawLoadBalancerConfig {
  provider: LoadBalancerProvider;
  target_groups?: Array<{
    arn: string;
    listener_port: number;
    target_port: number;
    proxy_port: number;
  }>;
  network_endpoint_groups?: string[];
  frontends?: Array<{ ip: string; port: number }>;
}

/** A certificate template, as in the config file. */
export interface RawCertificateConfig {
  kind: CertificateKind;
  cn?: string;
  organization: string[];
  dns: string[];
  ip: string[];
  uri: string[];
  country: string[];
  province: string[];
  locality: string[];
  street: string[];
  postal_code: string[];
  ttl: number;
}

/** The static config file `config/{shard}.jsonc` after schema defaults were applied. */
export interface RawServerConfig {
  $schema?: string;
  server: {
    bind: Record<ListenerName, string>;
    advertise: Partial<Record<ListenerName, string>>;
    files: Record<string, RawFileConfig>;
  };
  cluster: {
    id: string;
    secrets: {
      provider: SecretsProvider;
      prefix: string;
      encryption_key?: { provider: EncryptionKeyProvider; source: string };
    };
    leader_election: RawLeaderElectionConfig;
  };
  shard: {
    id: string;
    infra: { provider: InfraProvider; region: string; zone: string; options: JsonObject };
    subnet_pools: Record<string, string[]>;
    dynamic_subnet_pools: string[];
    request_timeout: string;
    create_rate_limit: string;
    health_check_interval: string;
    default_drain_timeout: string;
    shutdown_timeout: string;
    garbage_collection: {
      interval: string;
      registration_timeout: string;
      deleted_record_retention: string;
    };
    failure_detection: {
      sweep_interval: string;
      missed_reports: number;
      status_timeout: string;
      keepalive_time: string;
      keepalive_timeout: string;
      max_unhealthy_percent: number;
      max_unhealthy_count: number;
      decision_retention: string;
    };
    expiry: { eligible_age?: string; forced_age?: string; ondemand_age?: string };
    leader_election: RawLeaderElectionConfig;
  };
  load_balancers: Record<string, RawLoadBalancerConfig>;
  certificates: Record<string, RawCertificateConfig>;
  defaults: { args: JsonObject; vars: Record<string, string>; userdata?: RawUserdataConfig };
  templates: Record<string, RawTemplateConfig>;
  groups: Record<string, Record<string, RawGroupConfig>>;
}

/** The dynamic groups file `groups/{shard}.jsonc`: tenant → group key → partial group. */
export type DynamicGroups = Readonly<Record<string, Readonly<Record<string, RawGroupConfig>>>>;

// ---------------------------------------------------------------------------------------------
// Compiled shapes

/** A file delivered to agents or written by the server. */
export interface FileConfig {
  readonly kind: FileKind;
  /** Secret name (`secret`) or object key template (`storage`). */
  readonly source?: string;
  /** Certificate template name (`certificate`) or the content template (`env`, `json`, `string`). */
  readonly template?: JsonValue;
  /** For `certificate`: the agent-generated key whose public half is certified. */
  readonly key?: { readonly source: "agent"; readonly name: string };
}

/** Instance userdata. */
export interface UserdataConfig {
  readonly source: RawUserdataConfig["source"];
  readonly encoding: RawUserdataConfig["encoding"];
  readonly content: string;
}

/** Leader election timings (cluster or shard election). */
export interface LeaderElectionConfig {
  readonly enabled: boolean;
  /** Polling interval while leadership is changing. */
  readonly frequentIntervalMs: number;
  /** Polling interval while leadership is stable. */
  readonly infrequentIntervalMs: number;
  /** A leader whose lockfile is older than this is considered gone. */
  readonly leaderTimeoutMs: number;
}

/** Addresses of the five listeners, as `host:port`. */
export type ListenAddresses = { readonly [K in ListenerName]: string };

/** An instance template. */
export interface TemplateConfig {
  /** Three lowercase letters; the prefix of instance IDs. */
  readonly kind: string;
  readonly arch: Arch;
  readonly files: Readonly<Record<string, FileConfig>>;
  readonly args: Readonly<JsonObject>;
  readonly userdata?: UserdataConfig;
  readonly size: number;
  readonly instanceType?: string;
  readonly subnetPool?: string;
  readonly vars: Readonly<Record<string, string>>;
}

/** A static group. */
export interface GroupConfig {
  readonly template: string;
  readonly size: number;
  readonly instanceType?: string;
  readonly subnetPool?: string;
  readonly vars: Readonly<Record<string, string>>;
  readonly args: Readonly<JsonObject>;
  /** Absent: the shard's default drain timeout; 0: delete without draining. */
  readonly drainTimeoutMs?: number;
  readonly loadBalancers: readonly string[];
}

/** A load balancer that group instances are registered with. */
export interface LoadBalancerConfig {
  readonly provider: LoadBalancerProvider;
  readonly targetGroups: ReadonlyArray<{
    readonly arn: string;
    readonly listenerPort: number;
    readonly targetPort: number;
    readonly proxyPort: number;
  }>;
  readonly networkEndpointGroups: readonly string[];
  readonly frontends: ReadonlyArray<{ readonly ip: string; readonly port: number }>;
}

/** A certificate template used by `certificate` files (and `ca`, `agent`, `operator`). */
export interface CertificateConfig {
  readonly kind: CertificateKind;
  readonly cn?: string;
  readonly organization: readonly string[];
  readonly dns: readonly string[];
  readonly ip: readonly string[];
  readonly uri: readonly string[];
  readonly country: readonly string[];
  readonly province: readonly string[];
  readonly locality: readonly string[];
  readonly street: readonly string[];
  readonly postalCode: readonly string[];
  readonly ttlHours: number;
}

/** Failure detection, the mass-failure guard and decision retention (`shard.failure_detection`). */
export interface FailureDetectionConfig {
  /** How often stale instances are looked for. */
  readonly sweepIntervalMs: number;
  /** Reports a running but silent instance may miss before it is replaced with drain. */
  readonly missedReports: number;
  /** Timeout of one provider status check. */
  readonly statusTimeoutMs: number;
  /** Agent listener keepalive ping interval. */
  readonly keepaliveTimeMs: number;
  /** Agent listener keepalive ack timeout. */
  readonly keepaliveTimeoutMs: number;
  /** Share of a group (0..1) that may be unhealthy and still be replaced. */
  readonly maxUnhealthyFraction: number;
  /** Unhealthy count a group may always have and still be replaced. */
  readonly maxUnhealthyCount: number;
  /** Age beyond which decisions about live instances are pruned. */
  readonly decisionRetentionMs: number;
}

/** The compiled static configuration of one shard. */
export interface ServerConfig {
  readonly server: {
    readonly bind: ListenAddresses;
    /** An empty host (`:8992`) means: auto-detect (or `--advertise-host`). */
    readonly advertise: ListenAddresses;
    readonly files: Readonly<Record<string, FileConfig>>;
  };
  readonly cluster: {
    readonly id: string;
    readonly secrets: {
      readonly provider: SecretsProvider;
      readonly prefix: string;
      readonly encryptionKey?: {
        readonly provider: EncryptionKeyProvider;
        readonly source: string;
      };
    };
    readonly leaderElection: LeaderElectionConfig;
  };
  readonly shard: {
    readonly id: string;
    readonly infra: {
      readonly provider: InfraProvider;
      readonly region: string;
      readonly zone: string;
      readonly options: Readonly<JsonObject>;
    };
    readonly subnetPools: Readonly<Record<string, readonly string[]>>;
    /** Pools dynamic groups may use; empty means any pool. */
    readonly dynamicSubnetPools: readonly string[];
    readonly requestTimeoutMs: number;
    /** Minimum gap between instance creations; 0 = unlimited. */
    readonly createRateLimitMs: number;
    readonly healthCheckIntervalMs: number;
    readonly defaultDrainTimeoutMs: number;
    readonly shutdownTimeoutMs: number;
    readonly garbageCollection: {
      readonly intervalMs: number;
      readonly registrationTimeoutMs: number;
      readonly deletedRecordRetentionMs: number;
    };
    readonly failureDetection: FailureDetectionConfig;
    /** Each age is `undefined` when that expiry is disabled (absent or `0s`). */
    readonly expiry: {
      readonly eligibleAgeMs?: number;
      readonly forcedAgeMs?: number;
      readonly ondemandAgeMs?: number;
    };
    readonly leaderElection: LeaderElectionConfig;
  };
  readonly loadBalancers: Readonly<Record<string, LoadBalancerConfig>>;
  readonly certificates: Readonly<Record<string, CertificateConfig>>;
  readonly defaults: {
    readonly args: Readonly<JsonObject>;
    readonly vars: Readonly<Record<string, string>>;
    readonly userdata?: UserdataConfig;
  };
  readonly templates: Readonly<Record<string, TemplateConfig>>;
  /** tenant → group key → group. */
  readonly groups: Readonly<Record<string, Readonly<Record<string, GroupConfig>>>>;
}

/** A group as the reconciler sees it: static and dynamic merged, template resolved, hashed. */
export interface EffectiveGroup {
  readonly tenant: string;
  readonly key: string;
  /** Defined in the static config (its restricted fields cannot change at runtime). */
  readonly isStatic: boolean;
  /** A static group with an entry in the dynamic groups file. */
  readonly overridden: boolean;
  /** Template name. */
  readonly template: string;
  readonly templateConfig: TemplateConfig;
  readonly size: number;
  readonly instanceType?: string;
  readonly subnetPool: string;
  /** defaults → template → group, flat. */
  readonly vars: Readonly<Record<string, string>>;
  /** defaults → template → group, objects merged recursively. */
  readonly args: Readonly<JsonObject>;
  readonly kind: string;
  readonly arch: Arch;
  readonly files: Readonly<Record<string, FileConfig>>;
  /** The template's userdata, else the defaults'. */
  readonly userdata?: UserdataConfig;
  readonly drainTimeoutMs: number;
  readonly loadBalancers: readonly string[];
  /** `sha256:` + hex over {vars, files}: pushed to running instances. */
  readonly runtimeHash: string;
  /** `sha256:` + hex over {args, instance_type, subnet_pool, userdata, kind, arch}: drift rotates. */
  readonly infraHash: string;
}

/** The merged view of static config and dynamic groups. */
export interface EffectiveConfig {
  readonly config: ServerConfig;
  readonly dynamic: DynamicGroups;
  /** Every group, sorted by tenant then key. */
  readonly groups: readonly EffectiveGroup[];
}
