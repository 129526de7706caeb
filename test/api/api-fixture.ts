// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the gRPC API: real grpc-js listeners over TLS 1.3 on 127.0.0.1 (port 0), a real
 * cluster identity in MemoryStorage, in-memory SQLite, the shard config from examples/local.jsonc,
 * and a fake leadership the test flips. Clients dial `localhost` (a SAN of the server certificate).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChannelCredentials,
  type Client,
  Metadata,
  type MethodDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { JSONPath } from "jsonc-parser";
import { type Db, openDatabase } from "../../src/db/database.js";
import { insertPendingInstance, type NewInstance } from "../../src/db/instances-table.js";
import type { CertificateAuthority } from "../../src/pki/ca.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../../src/pki/cluster-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { issueClientCertificate, issueServerCertificate } from "../../src/pki/issue-certificate.js";
import { mintNonceJwt, type NonceClaims } from "../../src/pki/nonce-jwt.js";
import type { ClientRole } from "../../src/pki/role-extension.js";
import { grpcChannelCredentials } from "../../src/pki/tls-options.js";
import { AgentServiceClient } from "../../src/protocol/gen/nstance/v1/agent.js";
import { OperatorServiceClient } from "../../src/protocol/gen/nstance/v1/operator.js";
import { RegistrationServiceClient } from "../../src/protocol/gen/nstance/v1/registration.js";
import type { ApiContext, LeaderRef, Leadership } from "../../src/server/api/api-context.js";
import { type ApiServers, startApiServers } from "../../src/server/api/grpc-servers.js";
import { configKey, groupsKey, loadConfigOnce } from "../../src/server/config-loader.js";
import { ConfigStore } from "../../src/server/config-store.js";
import type { SecretsStore } from "../../src/server/secrets/secrets-store.js";
import type { LogAttrs, Logger } from "../../src/shared/logger.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import type { ObjectStorage } from "../../src/storage/object-storage.js";
import { shardConfigText } from "../support/shard-fixture.js";

/** Cluster and shard of examples/local.jsonc. */
export const CLUSTER_ID = "local";
/** Shard of examples/local.jsonc. */
export const SHARD = "local";
/** Per-call deadline; generous, so slow machines do not fail tests on timing. */
export const DEADLINE_MS = 15_000;

/** A logger that keeps every line, for asserting what ran (and what never did). */
export interface RecordingLogger extends Logger {
  lines: Array<{ level: string; msg: string; attrs?: LogAttrs }>;
}

/** Creates a {@link RecordingLogger}. */
export function recordingLogger(): RecordingLogger {
  const lines: RecordingLogger["lines"] = [];
  const at =
    (level: string) =>
    (msg: string, attrs?: LogAttrs): void => {
      lines.push({ level, msg, attrs });
    };
  const logger: RecordingLogger = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

/** A leadership the test controls. */
export class FakeLeadership implements Leadership {
  leading = true;
  current: LeaderRef | undefined = { id: "server-1", addr: "127.0.0.1:8991", term: 1 };
  isLeader(): boolean {
    return this.leading;
  }
  leader(): LeaderRef | undefined {
    return this.current;
  }
}

/** A client certificate and key (PEM). */
export interface ClientCert {
  certPem: string;
  keyPem: string;
}

/** Options for {@link startApiFixture}. */
export interface ApiFixtureOptions {
  /** Edits of examples/local.jsonc. */
  configEdits?: Array<[JSONPath, unknown]>;
  /** Initial `groups/local.jsonc`. */
  groupsText?: string;
  /** A secrets store for the secrets RPCs (none: they answer UNIMPLEMENTED). */
  secrets?: SecretsStore;
  /** The bucket. Defaults to a new MemoryStorage. */
  storage?: ObjectStorage;
  /** SQLite file. Defaults to `:memory:`. */
  dbPath?: string;
  /** Defaults to a {@link RecordingLogger}. */
  logger?: Logger;
  /** Passed to startApiServers. */
  registrationConcurrency?: number;
  /** Extra parts of the API context (a reconciler, the drain and error notifiers). */
  ctx?: Partial<ApiContext>;
}

/** A running API with everything a test needs to drive it. */
export interface ApiFixture {
  storage: ObjectStorage;
  db: Db;
  configStore: ConfigStore;
  identity: ClusterIdentity;
  leadership: FakeLeadership;
  servers: ApiServers;
  /** Records every line, unless the options named another logger. */
  logger: RecordingLogger;
  caCertPem: string;
  cachedir: string;
  /** Anonymous-TLS client of the Registration service. */
  registration(): RegistrationServiceClient;
  /** mTLS client of the Operator service (no certificate when `cert` is undefined). */
  operator(cert?: ClientCert, caCertPem?: string): OperatorServiceClient;
  /** mTLS client of the Agent service. */
  agent(cert?: ClientCert): AgentServiceClient;
  /** A certificate from the cluster CA. */
  clientCert(o: {
    clientId: string;
    tenant: string;
    role: ClientRole;
    ttlMs?: number;
    now?: Date;
  }): Promise<ClientCert>;
  /** Mints an agent nonce and inserts its pending instance row; returns the nonce. */
  issueAgentNonce(o: {
    id: string;
    tenant?: string;
    group?: string;
    providerId?: string;
  }): Promise<string>;
  /** Mints a nonce with the given claims (defaults: this cluster and shard, tenant `default`). */
  mintNonce(claims: Partial<NonceClaims>, opts?: { ttlMs?: number; now?: Date }): Promise<string>;
  /** Writes a new static config to storage (not loaded until a refresh). */
  writeConfig(text: string): Promise<void>;
  close(): Promise<void>;
}

/** Starts the three API listeners on 127.0.0.1 port 0. */
export async function startApiFixture(opts: ApiFixtureOptions = {}): Promise<ApiFixture> {
  const cachedir = await mkdtemp(join(tmpdir(), "nstance-api-"));
  const storage = opts.storage ?? new MemoryStorage({ name: "api-test" });
  const recorder = recordingLogger();
  const logger = opts.logger ?? recorder;
  await storage.put(configKey(SHARD), await shardConfigText(opts.configEdits ?? []));
  if (opts.groupsText !== undefined) await storage.put(groupsKey(SHARD), opts.groupsText);
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
  const db = openDatabase({ path: opts.dbPath ?? ":memory:" });
  const loaderOpts = { storage, shard: SHARD, cachedir, db, logger };
  const configStore = new ConfigStore({ ...loaderOpts, initial: await loadConfigOnce(loaderOpts) });
  const leadership = new FakeLeadership();
  const tls = {
    caCertPem: identity.ca.certPem,
    certPem: serverCert.certificatePem,
    keyPem: serverKeys.privateKeyPem,
  };
  const servers = await startApiServers({
    bind: { registration: "127.0.0.1:0", operator: "127.0.0.1:0", agent: "127.0.0.1:0" },
    tls,
    ctx: {
      clusterId: CLUSTER_ID,
      shard: SHARD,
      prefix: `shard/${SHARD}/`,
      db,
      storage,
      configStore,
      identity,
      leadership,
      logger,
      ...(opts.secrets ? { secrets: opts.secrets } : {}),
      ...opts.ctx,
    },
    logger,
    ...(opts.registrationConcurrency
      ? { registrationConcurrency: opts.registrationConcurrency }
      : {}),
  });
  const port = (addr: string) => addr.slice(addr.lastIndexOf(":") + 1);
  const clients: Client[] = [];
  const track = <C extends Client>(c: C): C => {
    clients.push(c);
    return c;
  };
  const creds = (cert?: ClientCert, ca = identity.ca.certPem): ChannelCredentials =>
    grpcChannelCredentials({ caCertPem: ca, ...(cert ?? {}) });
  const mintNonce: ApiFixture["mintNonce"] = (claims, o = {}) =>
    mintNonceJwt(
      {
        subject: "inst",
        kind: "agent",
        clusterId: CLUSTER_ID,
        shard: SHARD,
        group: "web",
        onDemand: false,
        tenant: "default",
        configHash: "",
        ...claims,
      },
      {
        signingKey: identity.nonceSigningKey,
        ttlMs: o.ttlMs ?? 300_000,
        ...(o.now ? { now: o.now } : {}),
      },
    );
  return {
    storage,
    db,
    configStore,
    identity,
    leadership,
    servers,
    logger: recorder,
    caCertPem: identity.ca.certPem,
    cachedir,
    registration: () =>
      track(
        new RegistrationServiceClient(`localhost:${port(servers.addresses.registration)}`, creds()),
      ),
    operator: (cert, ca) =>
      track(
        new OperatorServiceClient(`localhost:${port(servers.addresses.operator)}`, creds(cert, ca)),
      ),
    agent: (cert) =>
      track(new AgentServiceClient(`localhost:${port(servers.addresses.agent)}`, creds(cert))),
    clientCert: (o) => issueClientCert(identity.ca, o),
    mintNonce,
    issueAgentNonce: async (o) => {
      const tenant = o.tenant ?? "default";
      const group = o.group ?? "web";
      const nonce = await mintNonce({ subject: o.id, tenant, group });
      const row: NewInstance = {
        id: o.id,
        tenant,
        groupKey: group,
        nonce,
        infraConfigHash: "sha256:test",
        createdAt: Date.now(),
      };
      insertPendingInstance(db, row);
      if (o.providerId !== undefined) {
        db.prepare("UPDATE instances SET provider_id = ?, provider_state = ? WHERE id = ?").run(
          o.providerId,
          JSON.stringify({ status: "running" }),
          o.id,
        );
      }
      return nonce;
    },
    writeConfig: async (text) => {
      await storage.put(configKey(SHARD), text);
    },
    close: async () => {
      for (const c of clients) c.close();
      await servers.stop(1000);
      db.close();
      await rm(cachedir, { recursive: true, force: true });
    },
  };
}

/** Issues a client certificate (fresh key) from `ca`. */
export async function issueClientCert(
  ca: CertificateAuthority,
  o: { clientId: string; tenant: string; role: ClientRole; ttlMs?: number; now?: Date },
): Promise<ClientCert> {
  const keys = generateEd25519KeyPair();
  const issued = await issueClientCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    clientId: o.clientId,
    tenant: o.tenant,
    role: o.role,
    ...(o.ttlMs !== undefined ? { ttlMs: o.ttlMs } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
  return { certPem: issued.certificatePem, keyPem: keys.privateKeyPem };
}

/** The outcome of a call: its status code, and the response (or first streamed message) on OK. */
export interface CallOutcome {
  code: status;
  details: string;
  value?: unknown;
}

function isServiceError(v: unknown): v is ServiceError {
  return v instanceof Error && typeof (v as ServiceError).code === "number";
}

/**
 * Calls any method of a service through its definition with a partial request (the rest is the
 * message's defaults). Server streams resolve on their first message (then are cancelled), or
 * their status; client streams are ended at once.
 */
export function invoke(
  client: Client,
  def: MethodDefinition<unknown, unknown>,
  partial: object = {},
): Promise<CallOutcome> {
  const req = { ...(def.requestDeserialize(Buffer.alloc(0)) as object), ...partial };
  const options = { deadline: Date.now() + DEADLINE_MS };
  return new Promise((resolve) => {
    const done = (err: ServiceError | null, value?: unknown) =>
      resolve(
        err ? { code: err.code, details: err.details } : { code: status.OK, details: "", value },
      );
    if (def.responseStream) {
      const stream = def.requestStream
        ? client.makeBidiStreamRequest(
            def.path,
            def.requestSerialize,
            def.responseDeserialize,
            new Metadata(),
            options,
          )
        : client.makeServerStreamRequest(
            def.path,
            def.requestSerialize,
            def.responseDeserialize,
            req,
            new Metadata(),
            options,
          );
      let settled = false;
      stream.on("data", (msg: unknown) => {
        if (settled) return;
        settled = true;
        done(null, msg);
        stream.cancel();
      });
      stream.on("error", (err: ServiceError) => {
        if (!settled) {
          settled = true;
          done(err);
        }
      });
      stream.on("end", () => {
        if (!settled) {
          settled = true;
          done(null);
        }
      });
      if (def.requestStream && "end" in stream) (stream as unknown as { end(): void }).end();
      return;
    }
    if (def.requestStream) {
      const stream = client.makeClientStreamRequest(
        def.path,
        def.requestSerialize,
        def.responseDeserialize,
        new Metadata(),
        options,
        (err, res) => done(err, res),
      );
      stream.end();
      return;
    }
    client.makeUnaryRequest(
      def.path,
      def.requestSerialize,
      def.responseDeserialize,
      req,
      new Metadata(),
      options,
      (err, res) => done(err, res),
    );
  });
}

/** Awaits a callback-style unary call; rejects with the ServiceError. */
export function call<Res>(
  fn: (
    metadata: Metadata,
    options: { deadline: number },
    cb: (err: ServiceError | null, res?: Res) => void,
  ) => unknown,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(new Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err, res) =>
      err ? reject(err) : resolve(res as Res),
    );
  });
}

/** Asserts that `p` rejects with a gRPC status `code`; returns the error for message checks. */
export async function rejectsWithCode(p: Promise<unknown>, code: status): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    if (!isServiceError(err)) throw err;
    if (err.code !== code) {
      throw new Error(`expected ${status[code]}, got ${status[err.code]}: ${err.details}`);
    }
    return err;
  }
  throw new Error(`expected ${status[code]}, but the call succeeded`);
}
