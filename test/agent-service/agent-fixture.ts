// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the Agent service: the real API listeners (startApiServers, TLS 1.3 on
 * 127.0.0.1 port 0) with the real AgentService, a cluster identity and secrets in MemoryStorage,
 * in-memory SQLite, and a shard config derived from examples/local.jsonc whose `web` template
 * carries one file of every kind. Clients dial `localhost` with agent certificates from the CA.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ClientWritableStream, ServiceError } from "@grpc/grpc-js";
import type { JSONPath } from "jsonc-parser";
import { type Db, openDatabase } from "../../src/db/database.js";
import { insertPendingInstance, markInstanceRegistered } from "../../src/db/instances-table.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../../src/pki/cluster-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { issueServerCertificate } from "../../src/pki/issue-certificate.js";
import { grpcChannelCredentials } from "../../src/pki/tls-options.js";
import type { Empty } from "../../src/protocol/gen/google/protobuf/empty.js";
import {
  AgentServiceClient,
  type FileTransfer,
  type HealthReportRequest,
  type KeyGenerationRequest,
} from "../../src/protocol/gen/nstance/v1/agent.js";
import type { AgentDisconnect } from "../../src/server/agent-service/agent-connections.js";
import type { LbProvider } from "../../src/server/agent-service/lb-registration.js";
import { AgentService, type AgentServiceOptions } from "../../src/server/agent-service/service.js";
import { type ApiServers, startApiServers } from "../../src/server/api/grpc-servers.js";
import { configKey, loadConfigOnce } from "../../src/server/config-loader.js";
import { ConfigStore } from "../../src/server/config-store.js";
import { MemorySecretsStore } from "../../src/server/secrets/secrets-store.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import {
  type ClientCert,
  FakeLeadership,
  issueClientCert,
  type RecordingLogger,
  recordingLogger,
} from "../api/api-fixture.js";
import { shardConfigText } from "../support/shard-fixture.js";

/** Cluster, shard and prefix of examples/local.jsonc. */
export const CLUSTER_ID = "local";
/** Shard of examples/local.jsonc. */
export const SHARD = "local";
/** Shard prefix. */
export const PREFIX = `shard/${SHARD}/`;
/** Generous bound for anything asynchronous; tests never fail on timing alone. */
export const WAIT_MS = 15_000;

/** The `web` template's files: one of every kind (the certificate and env come from the example). */
export const WEB_FILES = {
  "web.crt": {
    kind: "certificate",
    template: "web-server",
    key: { source: "agent", name: "web.pub" },
  },
  "web.env": {
    kind: "env",
    template: { ENVIRONMENT: "{{ .Vars.environment }}", PORT: "{{ .Vars.listen_port }}" },
  },
  "instance.json": {
    kind: "json",
    template: { id: "{{ .Instance.ID }}", cluster: "{{ .Cluster.ID }}", port: 8080, tls: true },
  },
  "token.txt": { kind: "secret", source: "app-token" },
  "app.conf": { kind: "storage", source: "files/{{ .Vars.environment }}/app.conf" },
  "motd.txt": {
    kind: "string",
    template: "Hello {{ .Instance.Hostname }} ({{ .Instance.IP4 }})\n",
  },
};

/** Options for {@link startAgentFixture}. */
export interface AgentFixtureOptions {
  configEdits?: Array<[JSONPath, unknown]>;
  lbProvider?: LbProvider;
  service?: Partial<Omit<AgentServiceOptions, "ctx" | "secrets">>;
}

/** A running Agent API. */
export interface AgentFixture {
  storage: MemoryStorage;
  secrets: MemorySecretsStore;
  db: Db;
  configStore: ConfigStore;
  identity: ClusterIdentity;
  leadership: FakeLeadership;
  servers: ApiServers;
  agents: AgentService;
  logger: RecordingLogger;
  disconnects: AgentDisconnect[];
  notices: Array<{ instanceId: string; action: string }>;
  /** Inserts a registered instance row of group `web` (or `group`). */
  addInstance(id: string, o?: { group?: string; tenant?: string; providerId?: string }): void;
  /** An agent certificate for `id`. */
  agentCert(id: string, tenant?: string): Promise<ClientCert>;
  /** An Agent service client with `cert`. */
  client(cert: ClientCert): AgentServiceClient;
  close(): Promise<void>;
}

/** Starts the Agent API with the test config. */
export async function startAgentFixture(opts: AgentFixtureOptions = {}): Promise<AgentFixture> {
  const cachedir = await mkdtemp(join(tmpdir(), "nstance-agent-svc-"));
  const storage = new MemoryStorage({ name: "agent-service-test" });
  const logger = recordingLogger();
  await storage.put(
    configKey(SHARD),
    await shardConfigText([
      [["templates", "web", "files"], WEB_FILES],
      ...(opts.configEdits ?? []),
    ]),
  );
  await storage.put(`${PREFIX}files/development/app.conf`, "listen = 8080\n");
  const secrets = new MemorySecretsStore();
  await secrets.put("app-token", "s3cr3t-token-value");
  const identity = await ensureClusterIdentity({
    storage,
    clusterId: CLUSTER_ID,
    encryptionKey: randomBytes(32),
    logger,
  });
  const serverKeys = generateEd25519KeyPair();
  const serverCert = await issueServerCertificate({
    ca: identity.ca,
    publicKeyPem: serverKeys.publicKeyPem,
  });
  const db = openDatabase({ path: ":memory:" });
  const loaderOpts = { storage, shard: SHARD, cachedir, db, logger };
  const configStore = new ConfigStore({ ...loaderOpts, initial: await loadConfigOnce(loaderOpts) });
  const leadership = new FakeLeadership();
  const ctx = {
    clusterId: CLUSTER_ID,
    shard: SHARD,
    prefix: PREFIX,
    db,
    storage,
    configStore,
    identity,
    leadership,
    logger,
  };
  const disconnects: AgentDisconnect[] = [];
  const notices: AgentFixture["notices"] = [];
  const agents = new AgentService({
    ctx,
    secrets,
    ...(opts.lbProvider ? { lbProvider: opts.lbProvider } : {}),
    onDisconnect: (e) => disconnects.push(e),
    onTerminationNotice: (instanceId, n) => notices.push({ instanceId, action: n.action }),
    health: { flushIntervalMs: 5 },
    ...opts.service,
  });
  agents.start();
  const servers = await startApiServers({
    bind: { registration: "127.0.0.1:0", operator: "127.0.0.1:0", agent: "127.0.0.1:0" },
    tls: {
      caCertPem: identity.ca.certPem,
      certPem: serverCert.certificatePem,
      keyPem: serverKeys.privateKeyPem,
    },
    ctx,
    logger,
    agentService: agents.handlers(),
  });
  const agentPort = servers.addresses.agent.slice(servers.addresses.agent.lastIndexOf(":") + 1);
  const clients: AgentServiceClient[] = [];
  return {
    storage,
    secrets,
    db,
    configStore,
    identity,
    leadership,
    servers,
    agents,
    logger,
    disconnects,
    notices,
    addInstance(id, o = {}) {
      const now = Date.now();
      insertPendingInstance(db, {
        id,
        tenant: o.tenant ?? "default",
        groupKey: o.group ?? "web",
        nonce: `nonce-${id}`,
        infraConfigHash: "sha256:test",
        createdAt: now,
      });
      markInstanceRegistered(db, {
        id,
        registeredAt: now,
        instancePub: "unused",
        certSerial: "01",
        ip4: "10.0.0.5",
        hostname: `${id}.test.internal`,
      });
      if (o.providerId) {
        db.prepare("UPDATE instances SET provider_id = ?, provider_state = ? WHERE id = ?").run(
          o.providerId,
          JSON.stringify({ status: "running" }),
          id,
        );
      }
    },
    agentCert: (id, tenant = "default") =>
      issueClientCert(identity.ca, { clientId: id, tenant, role: "agent" }),
    client(cert) {
      const c = new AgentServiceClient(
        `localhost:${agentPort}`,
        grpcChannelCredentials({ caCertPem: identity.ca.certPem, ...cert }),
      );
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.close();
      await servers.stop(1000);
      await agents.stop();
      db.close();
      await rm(cachedir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value other than undefined/false; throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A health report with sensible defaults. */
export function report(
  instanceId: string,
  o: Partial<HealthReportRequest> = {},
): HealthReportRequest {
  const now = new Date();
  const w = {
    cpuUsage: 1.5,
    memoryUsage: 40,
    networkBytesSent: 10,
    networkBytesReceived: 20,
    diskUsed: 30,
  };
  return {
    version: "1.0.0",
    instanceId,
    count: 1,
    timestamp: now,
    started: now,
    windowStart: now,
    windowEnd: now,
    uptime: 100,
    oneMinute: w,
    fiveMinutes: w,
    fifteenMinutes: w,
    files: {},
    terminationNotice: undefined,
    configHash: "",
    patchError: "",
    ...o,
  };
}

/** An open SubmitHealthReport stream and how it ended. */
export interface HealthStream {
  call: ClientWritableStream<HealthReportRequest>;
  /** Resolves with the status when the call ends (null for OK). */
  done: Promise<ServiceError | null>;
}

/** Opens a health stream. */
export function openHealthStream(client: AgentServiceClient): HealthStream {
  let call!: ClientWritableStream<HealthReportRequest>;
  const done = new Promise<ServiceError | null>((resolve) => {
    call = client.submitHealthReport((err: ServiceError | null, _res?: Empty) => resolve(err));
  });
  return { call, done };
}

/** Collects messages of a server stream. */
export class Collected<T> {
  readonly messages: T[] = [];
  error: ServiceError | undefined;
  ended = false;
  constructor(stream: NodeJS.EventEmitter & { cancel(): void }) {
    this.stream = stream;
    stream.on("data", (m: T) => this.messages.push(m));
    stream.on("error", (e: ServiceError) => {
      this.error = e;
    });
    stream.on("end", () => {
      this.ended = true;
    });
  }
  readonly stream: NodeJS.EventEmitter & { cancel(): void };
}

/** Splits collected FileTransfers into patches (files by name, then the commit hash). */
export function patches(
  messages: readonly FileTransfer[],
): Array<{ files: Map<string, string>; hash: string }> {
  const out: Array<{ files: Map<string, string>; hash: string }> = [];
  let files = new Map<string, string>();
  for (const m of messages) {
    if (m.filename === "") {
      out.push({ files, hash: m.configHash });
      files = new Map();
    } else {
      files.set(m.filename, m.content.toString("utf8"));
    }
  }
  return out;
}

/** Opens ReceiveFiles and ReceiveKeyRequests for a client. */
export function openServerStreams(client: AgentServiceClient): {
  files: Collected<FileTransfer>;
  keys: Collected<KeyGenerationRequest>;
} {
  return {
    files: new Collected<FileTransfer>(client.receiveFiles({})),
    keys: new Collected<KeyGenerationRequest>(client.receiveKeyRequests({})),
  };
}
