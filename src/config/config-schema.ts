// SPDX-License-Identifier: Apache-2.0
/**
 * The schema of the static config (`config/{shard}.jsonc`) and of the dynamic groups file
 * (`groups/{shard}.jsonc`). Defaults, validation, the JSON Schema in schema/ and
 * docs/configuration.md all come from these nodes; cross-reference rules live in validate-config.ts.
 */
import {
  arr,
  bool,
  duration,
  hostPort,
  identifier,
  int,
  json,
  type MapNode,
  map,
  type ObjectNode,
  type ObjectRule,
  obj,
  oneOf,
  type SchemaNode,
  str,
  withDoc,
} from "./schema-dsl.js";
import {
  ARCHES,
  CERTIFICATE_KINDS,
  ENCRYPTION_KEY_PROVIDERS,
  FILE_KINDS,
  INFRA_PROVIDERS,
  type ListenerName,
  LOAD_BALANCER_PROVIDERS,
  SECRETS_PROVIDERS,
  USERDATA_ENCODINGS,
  USERDATA_SOURCES,
} from "./server-config.js";

/** Default listen addresses (seed 000: health on 0.0.0.0:8990, then one port per service). */
export const DEFAULT_BIND: Readonly<Record<ListenerName, string>> = {
  health: "0.0.0.0:8990",
  election: "0.0.0.0:8991",
  registration: "0.0.0.0:8992",
  operator: "0.0.0.0:8993",
  agent: "0.0.0.0:8994",
};
/** Default key prefix of object-storage secrets. */
export const DEFAULT_SECRETS_PREFIX = "secret/";
/** Default leader election timings (faster failover than the Go reference's 5s/30s/15s). */
export const DEFAULT_LEADER_ELECTION = {
  enabled: true,
  frequent_interval: "2s",
  infrequent_interval: "30s",
  leader_timeout: "6s",
} as const;
/** Default timeout of provider and storage requests. */
export const DEFAULT_REQUEST_TIMEOUT = "30s";
/** Default minimum gap between instance creations (0s = unlimited). */
export const DEFAULT_CREATE_RATE_LIMIT = "0s";
/** Default interval of instance health checks. */
export const DEFAULT_HEALTH_CHECK_INTERVAL = "60s";
/** Default time an instance may take to drain before it is deleted. */
export const DEFAULT_DRAIN_TIMEOUT = "5m";
/** Default grace period of a graceful server shutdown. */
export const DEFAULT_SHUTDOWN_TIMEOUT = "10s";
/** Default garbage collection timings. */
export const DEFAULT_GARBAGE_COLLECTION = {
  interval: "2m",
  registration_timeout: "5m",
  deleted_record_retention: "30m",
} as const;
/**
 * Default failure detection settings (seed 003: GC polling every 2 min, 3 missed reports, keepalive
 * finds a dead peer within 30 s; reference §3.2 and §5.4: ping after 20 s, 10 s ack timeout, 5 s
 * provider status timeout). The mass-failure guard heals while at most half of a group, or at
 * least one instance, is unhealthy: a 3-instance group with one failure still heals.
 */
export const DEFAULT_FAILURE_DETECTION = {
  sweep_interval: "2m",
  missed_reports: 3,
  status_timeout: "5s",
  keepalive_time: "20s",
  keepalive_timeout: "10s",
  max_unhealthy_percent: 50,
  max_unhealthy_count: 1,
  decision_retention: "168h",
} as const;
/** Default size of a template (used by on-demand instances). */
export const DEFAULT_TEMPLATE_SIZE = 1;
/** Size of a group that does not set one. */
export const DEFAULT_GROUP_SIZE = 0;
/** Default certificate lifetime in hours (one year). */
export const DEFAULT_CERTIFICATE_TTL_HOURS = 8760;
/** Default userdata source. */
export const DEFAULT_USERDATA_SOURCE = "inline";
/** Default userdata encoding. */
export const DEFAULT_USERDATA_ENCODING = "plain";
/** URL of the JSON Schema of the static config, relative to the repository root. */
export const CONFIG_SCHEMA_FILE = "schema/config.schema.json";
/** URL of the JSON Schema of the dynamic groups file, relative to the repository root. */
export const GROUPS_SCHEMA_FILE = "schema/groups.schema.json";

const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
const NAME_HINT = "must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit";
const FILE_NAME_PATTERN = "^(?!write-files\\.last$)[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$";
const FILE_NAME_HINT =
  "must be a plain file name (letters, digits, '.', '_', '-'; no path, no leading dot)";

const port = (doc: string): SchemaNode => int(doc, { required: true, minimum: 1, maximum: 65535 });

const userdataNode = obj(
  "Instance userdata (cloud-init or a script) passed to the provider.",
  {
    source: oneOf(
      "`inline`: `content` is the userdata; `url`: `content` is a URL to fetch it from.",
      USERDATA_SOURCES,
      {
        default: DEFAULT_USERDATA_SOURCE,
      },
    ),
    encoding: oneOf(
      "How `content` is encoded. `gzip` is only valid with source `url` (JSON cannot hold binary).",
      USERDATA_ENCODINGS,
      { default: DEFAULT_USERDATA_ENCODING },
    ),
    content: str("The userdata itself, or its URL.", { required: true, minLength: 1 }),
  },
  {
    defName: "Userdata",
    rules: [{ when: { field: "encoding", in: ["gzip"] }, shapes: { source: oneOf("", ["url"]) } }],
  },
);

function fileNode(forServer: boolean): ObjectNode {
  const kinds = forServer ? FILE_KINDS.filter((k) => k !== "certificate") : FILE_KINDS;
  const fields: Record<string, SchemaNode> = {
    kind: oneOf(
      "`secret`: a secret by name; `storage`: an object from shard storage; " +
        (forServer ? "" : "`certificate`: a certificate issued for an agent-generated key; ") +
        "`env`: `KEY=value` lines; `json`: a JSON document; `string`: raw text.",
      kinds,
      { required: true },
    ),
    source: str(
      "Secret name (`secret`) or object key template relative to the shard prefix (`storage`).",
      {
        minLength: 1,
      },
    ),
    template: json(
      (forServer ? "A" : "Certificate template name (`certificate`), a") +
        "n object of string templates (`env`), a JSON object whose string leaves are templates (`json`), or a string template (`string`).",
      "any",
    ),
  };
  if (!forServer) {
    fields.key = obj(
      "The key pair a `certificate` file certifies; the private key never leaves the instance.",
      {
        source: oneOf("Where the key pair is generated; only `agent`.", ["agent"], {
          required: true,
        }),
        name: str("File name of the agent's public key, e.g. `kubelet.server.pub`.", {
          required: true,
          pattern: "^[A-Za-z0-9][A-Za-z0-9_.-]*\\.pub$",
          patternHint: "must be a public key file name ending in .pub",
        }),
      },
    );
  }
  const others = (...names: string[]): string[] => names.filter((n) => Object.hasOwn(fields, n));
  const rules: ObjectRule[] = [
    {
      when: { field: "kind", in: ["secret", "storage"] },
      require: ["source"],
      forbid: others("template", "key"),
    },
    {
      when: { field: "kind", in: ["env"] },
      require: ["template"],
      forbid: others("source", "key"),
      shapes: { template: map("", { name: "name" }, str("")) },
    },
    {
      when: { field: "kind", in: ["json"] },
      require: ["template"],
      forbid: others("source", "key"),
      shapes: { template: json("", "object") },
    },
    {
      when: { field: "kind", in: ["string"] },
      require: ["template"],
      forbid: others("source", "key"),
      shapes: { template: str("") },
    },
  ];
  if (!forServer) {
    rules.splice(1, 0, {
      when: { field: "kind", in: ["certificate"] },
      require: ["template", "key"],
      forbid: ["source"],
      shapes: { template: str("", { minLength: 1 }) },
    });
  }
  return obj(
    forServer
      ? "A file the server writes for itself (to `--server-files-dir`)."
      : "A file delivered to every instance of the template by its agent.",
    fields,
    { defName: forServer ? "ServerFileConfig" : "FileConfig", rules },
  );
}

const leaderElectionNode = obj(
  "Leader election over object storage (a lockfile renewed with conditional writes).",
  {
    enabled: bool("Take part in the election. When false this server never leads.", {
      default: DEFAULT_LEADER_ELECTION.enabled,
    }),
    frequent_interval: duration("Polling interval while leadership is changing.", {
      default: DEFAULT_LEADER_ELECTION.frequent_interval,
      min: "positive",
    }),
    infrequent_interval: duration("Polling interval while leadership is stable.", {
      default: DEFAULT_LEADER_ELECTION.infrequent_interval,
      min: "positive",
    }),
    leader_timeout: duration(
      "A leader that has not renewed its lockfile for this long is replaced. Must exceed `frequent_interval`.",
      { default: DEFAULT_LEADER_ELECTION.leader_timeout, min: "positive" },
    ),
  },
  { defName: "LeaderElection", default: {} },
);

const varsNode = (o: { default?: unknown } = {}): MapNode =>
  map(
    "Variables for file and certificate templates (`.Vars.name`).",
    { name: "name" },
    str("A value."),
    o,
  );

/** The group node: static groups get defaults and need a template; dynamic entries get neither. */
function groupNode(dynamic: boolean): ObjectNode {
  const d = <T>(value: T): { default?: T } => (dynamic ? {} : { default: value });
  return obj(
    dynamic
      ? "A dynamic group, or an override of a static group (then only `size`, `instance_type` and `vars` may differ)."
      : "A group: instances of one template kept at `size`.",
    {
      template: str(
        dynamic
          ? "Template name. Required for groups that are not in the static config."
          : "Template name.",
        { required: !dynamic, minLength: 1 },
      ),
      size: int("Desired number of managed instances.", { minimum: 0, ...d(DEFAULT_GROUP_SIZE) }),
      instance_type: str("Provider instance type; overrides the template's.", { minLength: 1 }),
      subnet_pool: str("Subnet pool; overrides the template's.", { minLength: 1 }),
      vars: varsNode(d({})),
      args: json(
        "Provider arguments, deep-merged over the template's and the defaults'.",
        "object",
        d({}),
      ),
      drain_timeout: duration(
        "How long instances may drain before deletion; `0s` deletes at once. Absent: `shard.default_drain_timeout`.",
        { min: "non-negative" },
      ),
      load_balancers: arr(
        "Load balancers (keys of `load_balancers`) to register instances with.",
        str(""),
        {
          uniqueItems: true,
          ...d([]),
        },
      ),
    },
    { defName: dynamic ? "DynamicGroupConfig" : "GroupConfig" },
  );
}

const templateNode = obj(
  "An instance template.",
  {
    kind: str("Instance kind: exactly three lowercase letters, used as the instance ID prefix.", {
      required: true,
      pattern: "^[a-z]{3}$",
      patternHint: "must be exactly 3 lowercase letters",
    }),
    arch: oneOf("CPU architecture.", ARCHES, { required: true }),
    files: map(
      "Files delivered to instances, by file name.",
      {
        name: "file",
        pattern: FILE_NAME_PATTERN,
        patternHint: FILE_NAME_HINT,
      },
      fileNode(false),
      { default: {} },
    ),
    args: json("Provider arguments, deep-merged over `defaults.args`.", "object", { default: {} }),
    userdata: withDoc(userdataNode, "Userdata; when absent `defaults.userdata` is used."),
    size: int("Size of on-demand groups created from this template.", {
      minimum: 1,
      default: DEFAULT_TEMPLATE_SIZE,
    }),
    instance_type: str("Default provider instance type.", { minLength: 1 }),
    subnet_pool: str("Default subnet pool (a key of `shard.subnet_pools`).", { minLength: 1 }),
    vars: varsNode({ default: {} }),
  },
  { defName: "TemplateConfig" },
);

const loadBalancerNode = obj(
  "A load balancer; its provider must match `shard.infra.provider`.",
  {
    provider: oneOf(
      "Load balancer backend (`local` and `fake` are simulated).",
      LOAD_BALANCER_PROVIDERS,
      {
        required: true,
      },
    ),
    target_groups: arr(
      "AWS target groups.",
      obj("An AWS target group.", {
        arn: str("Target group ARN.", { required: true, minLength: 1 }),
        listener_port: port("Public listener port."),
        target_port: port("Port on the instance."),
        proxy_port: port("Port of the local proxy."),
      }),
      { minItems: 1 },
    ),
    network_endpoint_groups: arr(
      "Google network endpoint group names.",
      str("", { minLength: 1 }),
      {
        minItems: 1,
      },
    ),
    frontends: arr(
      "Google forwarding-rule frontends.",
      obj("A frontend.", {
        ip: str("Frontend IP address.", { required: true, format: "ip" }),
        port: port("Frontend port."),
      }),
      { minItems: 1 },
    ),
  },
  {
    defName: "LoadBalancerConfig",
    rules: [
      {
        when: { field: "provider", in: ["aws"] },
        require: ["target_groups"],
        forbid: ["network_endpoint_groups", "frontends"],
      },
      {
        when: { field: "provider", in: ["google"] },
        require: ["network_endpoint_groups", "frontends"],
        forbid: ["target_groups"],
      },
      {
        when: { field: "provider", in: ["local", "fake"] },
        forbid: ["target_groups", "network_endpoint_groups", "frontends"],
      },
    ],
  },
);

const strings = (doc: string): SchemaNode => arr(doc, str(""), { default: [] });

const certificateNode = obj(
  "A certificate template. Names `ca`, `agent` and `operator` configure the CA and client certificates.",
  {
    kind: oneOf("Extended key usage.", CERTIFICATE_KINDS, { required: true }),
    cn: str("Common name (a template)."),
    organization: strings("Organization (O)."),
    dns: strings("DNS SANs (templates)."),
    ip: strings("IP SANs (templates)."),
    uri: strings("URI SANs (templates)."),
    country: strings("Country (C)."),
    province: strings("State or province (ST)."),
    locality: strings("Locality (L)."),
    street: strings("Street address."),
    postal_code: strings("Postal code."),
    ttl: int("Lifetime in hours.", { minimum: 1, default: DEFAULT_CERTIFICATE_TTL_HOURS }),
  },
  { defName: "CertificateConfig" },
);

const listeners = (
  doc: (name: string) => string,
  withDefaults: boolean,
): Record<string, SchemaNode> =>
  Object.fromEntries(
    (Object.keys(DEFAULT_BIND) as ListenerName[]).map((name) => [
      name,
      hostPort(doc(name), withDefaults ? { default: DEFAULT_BIND[name] } : {}),
    ]),
  );

const nameKeys = { name: "name", pattern: NAME_PATTERN, patternHint: NAME_HINT };
const tenantKeys = { name: "tenant", format: "identifier" } as const;
const groupKeys = { name: "group", format: "identifier" } as const;

/** The static configuration file. */
export const CONFIG_SCHEMA: ObjectNode = obj(
  "Static configuration of one nstance shard (`config/{shard}.jsonc`), managed by infrastructure tooling.",
  {
    server: obj(
      "Settings of each server process of the shard.",
      {
        bind: obj(
          "Listen addresses (`host:port`).",
          listeners((n) => `Address of the ${n} listener.`, true),
          {
            default: {},
          },
        ),
        advertise: obj(
          "Addresses other parties dial. An empty host (`:8992`) or `0.0.0.0` means auto-detect (or `--advertise-host`). Each defaults to the bind port with an auto-detected host.",
          listeners((n) => `Advertised address of the ${n} listener.`, false),
          { default: {} },
        ),
        files: map(
          "Files the leader writes for local helpers, by file name.",
          {
            name: "file",
            pattern: FILE_NAME_PATTERN,
            patternHint: FILE_NAME_HINT,
          },
          fileNode(true),
          { default: {} },
        ),
      },
      { default: {} },
    ),
    cluster: obj(
      "Settings shared by every shard of the cluster.",
      {
        id: identifier("Cluster identifier.", { required: true }),
        secrets: obj(
          "Where cluster secrets (CA key, nonce key, custom secrets) are kept.",
          {
            provider: oneOf(
              "`object-storage`: encrypted objects in cluster storage; `memory`: tests only.",
              SECRETS_PROVIDERS,
              {
                required: true,
              },
            ),
            prefix: str("Key prefix of secrets.", { default: DEFAULT_SECRETS_PREFIX }),
            encryption_key: obj("The 32-byte AES-256-GCM key. Required for `object-storage`.", {
              provider: oneOf(
                "`env`: an environment variable; `file`: a file path.",
                ENCRYPTION_KEY_PROVIDERS,
                {
                  required: true,
                },
              ),
              source: str("Environment variable name or file path.", {
                required: true,
                minLength: 1,
              }),
            }),
          },
          {
            required: true,
            rules: [
              { when: { field: "provider", in: ["object-storage"] }, require: ["encryption_key"] },
              { when: { field: "provider", in: ["memory"] }, forbid: ["encryption_key"] },
            ],
          },
        ),
        leader_election: withDoc(
          leaderElectionNode,
          "The cluster election (CA and nonce key creation).",
        ),
      },
      { required: true },
    ),
    shard: obj(
      "Settings of this shard.",
      {
        id: identifier("Shard identifier (must equal `--shard`).", { required: true }),
        infra: obj(
          "The infrastructure provider.",
          {
            provider: oneOf(
              "`local`: agents as local processes; `fake`: simulated instances; `aws`, `google`, `proxmox`.",
              INFRA_PROVIDERS,
              { required: true },
            ),
            region: str("Provider region. Required for `aws` and `google`.", { default: "" }),
            zone: str("Provider zone. Required for `aws` and `google`.", { default: "" }),
            options: json("Provider-specific options.", "object", { default: {} }),
          },
          {
            required: true,
            rules: [
              {
                when: { field: "provider", in: ["aws", "google"] },
                require: ["region", "zone"],
                shapes: { region: str("", { minLength: 1 }), zone: str("", { minLength: 1 }) },
              },
            ],
          },
        ),
        subnet_pools: map(
          "Subnet pools: pool name → provider subnet IDs, tried in order. A subnet may belong to one pool only.",
          { name: "pool", format: "identifier" },
          arr("Provider subnet IDs.", str("", { minLength: 1 }), {
            minItems: 1,
            uniqueItems: true,
          }),
          { required: true, minEntries: 1 },
        ),
        dynamic_subnet_pools: arr(
          "Pools dynamic groups may use; empty allows any pool.",
          str("", { minLength: 1 }),
          { default: [], uniqueItems: true },
        ),
        request_timeout: duration("Timeout of provider and storage requests.", {
          default: DEFAULT_REQUEST_TIMEOUT,
          min: "positive",
        }),
        create_rate_limit: duration("Minimum gap between instance creations; `0s` = unlimited.", {
          default: DEFAULT_CREATE_RATE_LIMIT,
          min: "non-negative",
        }),
        health_check_interval: duration("Interval of instance health checks.", {
          default: DEFAULT_HEALTH_CHECK_INTERVAL,
          min: "positive",
        }),
        default_drain_timeout: duration(
          "Drain timeout of groups that do not set `drain_timeout`.",
          {
            default: DEFAULT_DRAIN_TIMEOUT,
            min: "non-negative",
          },
        ),
        shutdown_timeout: duration("Grace period of a graceful shutdown.", {
          default: DEFAULT_SHUTDOWN_TIMEOUT,
          min: "non-negative",
        }),
        garbage_collection: obj(
          "Garbage collection of dangling instances and old records (leader only).",
          {
            interval: duration("How often garbage collection runs.", {
              default: DEFAULT_GARBAGE_COLLECTION.interval,
              min: "positive",
            }),
            registration_timeout: duration(
              "Instances that have not registered after this long are deleted. Must exceed `interval`.",
              { default: DEFAULT_GARBAGE_COLLECTION.registration_timeout, min: "positive" },
            ),
            deleted_record_retention: duration("How long records of deleted instances are kept.", {
              default: DEFAULT_GARBAGE_COLLECTION.deleted_record_retention,
              min: "positive",
            }),
          },
          { default: {} },
        ),
        failure_detection: obj(
          "Detection and replacement of failed instances (seed 003), the mass-failure guard and the decision history.",
          {
            sweep_interval: duration(
              "How often the leader looks for instances whose last health report is older than one report interval, and checks them with the provider.",
              { default: DEFAULT_FAILURE_DETECTION.sweep_interval, min: "positive" },
            ),
            missed_reports: int(
              "Reports an instance may miss while the provider says its VM runs; then it is replaced (with drain).",
              { default: DEFAULT_FAILURE_DETECTION.missed_reports, minimum: 1 },
            ),
            status_timeout: duration("Timeout of one provider status check.", {
              default: DEFAULT_FAILURE_DETECTION.status_timeout,
              min: "positive",
            }),
            keepalive_time: duration(
              "The Agent listener pings every connection this often. A dead agent or a broken network is found within `keepalive_time` + `keepalive_timeout`. Applies when the server starts.",
              { default: DEFAULT_FAILURE_DETECTION.keepalive_time, min: "positive" },
            ),
            keepalive_timeout: duration(
              "A connection whose ping is not answered within this is dropped. Applies when the server starts.",
              { default: DEFAULT_FAILURE_DETECTION.keepalive_timeout, min: "positive" },
            ),
            max_unhealthy_percent: int(
              "Mass-failure guard: percent of a group's size that may be unhealthy at once and still be replaced. Beyond it (and beyond `max_unhealthy_count`) replacements stop and an alert is raised.",
              {
                default: DEFAULT_FAILURE_DETECTION.max_unhealthy_percent,
                minimum: 0,
                maximum: 100,
              },
            ),
            max_unhealthy_count: int(
              "Mass-failure guard: unhealthy instances a group may always have and still be replaced, whatever its size.",
              { default: DEFAULT_FAILURE_DETECTION.max_unhealthy_count, minimum: 0 },
            ),
            decision_retention: duration(
              "How long decisions about live instances are kept. A deleted instance's history goes with its record (`garbage_collection.deleted_record_retention`).",
              { default: DEFAULT_FAILURE_DETECTION.decision_retention, min: "positive" },
            ),
          },
          { default: {} },
        ),
        expiry: obj(
          "Instance age limits; absent or `0s` disables each.",
          {
            eligible_age: duration(
              "Age at which managed instances are replaced when nothing else drains.",
              {
                min: "non-negative",
              },
            ),
            forced_age: duration(
              "Age at which managed instances are replaced regardless. Must exceed `eligible_age`.",
              {
                min: "non-negative",
              },
            ),
            ondemand_age: duration("Age at which on-demand instances are drained and deleted.", {
              min: "non-negative",
            }),
          },
          { default: {} },
        ),
        leader_election: withDoc(
          leaderElectionNode,
          "The shard election (which server manages the shard).",
        ),
      },
      { required: true },
    ),
    load_balancers: map(
      "Load balancers groups can register instances with.",
      nameKeys,
      loadBalancerNode,
      {
        default: {},
      },
    ),
    certificates: map("Certificate templates.", nameKeys, certificateNode, { default: {} }),
    defaults: obj(
      "Defaults merged under every template.",
      {
        args: json("Provider arguments.", "object", { default: {} }),
        vars: varsNode({ default: {} }),
        userdata: withDoc(userdataNode, "Userdata of templates that set none."),
      },
      { default: {} },
    ),
    templates: map(
      "Instance templates.",
      { name: "template", format: "identifier" },
      templateNode,
      {
        required: true,
      },
    ),
    groups: map(
      "Static groups by tenant. Their `template`, `subnet_pool`, `args`, `drain_timeout` and `load_balancers` cannot be changed at runtime.",
      tenantKeys,
      map("Groups of one tenant.", groupKeys, groupNode(false)),
      { default: {} },
    ),
  },
  { allowSchemaKey: true },
);

/** The dynamic groups file. */
export const GROUPS_SCHEMA: MapNode = map(
  "Dynamic groups of one nstance shard (`groups/{shard}.jsonc`), written by the server for Operator API changes: tenant → group → group.",
  tenantKeys,
  map("Groups of one tenant.", groupKeys, groupNode(true)),
  { allowSchemaKey: true },
);
