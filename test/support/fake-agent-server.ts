// SPDX-License-Identifier: Apache-2.0
/**
 * A real grpc-js server implementing RegistrationService.RegisterAgent and AgentService for agent
 * tests (the Go repo's `pkg/fakeserver` idea): TLS 1.3, mutual TLS on the agent port, a throwaway
 * CA. It verifies nonces and issues real client certificates, records what agents send, and lets
 * a test push key requests and file patches, end streams, or stop and restart on the same ports.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import {
  Metadata,
  Server,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import { parseClientIdentity } from "../../src/pki/client-identity.js";
import { issueClientCertificate } from "../../src/pki/issue-certificate.js";
import { mintNonceJwt, verifyNonceJwt } from "../../src/pki/nonce-jwt.js";
import { createTestPki, type TestPki } from "../../src/pki/testing.js";
import { grpcServerCredentials } from "../../src/pki/tls-options.js";
import type { Empty } from "../../src/protocol/gen/google/protobuf/empty.js";
import {
  AgentServiceService,
  type FileTransfer,
  type HealthReportRequest,
  type KeyGenerationRequest,
  type SubmitPublicKeysRequest,
} from "../../src/protocol/gen/nstance/v1/agent.js";
import {
  type RegisterAgentRequest,
  type RegisterAgentResponse,
  RegistrationServiceService,
} from "../../src/protocol/gen/nstance/v1/registration.js";
import { peerCertificate } from "../../src/protocol/peer-certificate.js";
import { toGrpcError } from "../../src/protocol/to-grpc-error.js";
import { NstanceError } from "../../src/shared/errors.js";
import { silentLogger } from "../../src/shared/logger.js";

/** Options for {@link FakeAgentServer.create}. */
export interface FakeAgentServerOptions {
  /** Shares a CA between several fake servers; a new one is made when absent. */
  pki?: TestPki;
  /** Shares the nonce signing key between servers; a new one is made when absent. */
  nonceKey?: KeyObject;
  clusterId?: string;
  shard?: string;
  /** `standby` answers every call with FAILED_PRECONDITION, as a non-leader server does. */
  role?: "leader" | "standby";
  /** Lifetime of issued agent certificates; defaults to 24 h. */
  certTtlMs?: number;
}

/** A successful registration. */
export interface RecordedRegistration {
  request: RegisterAgentRequest;
  instanceId: string;
  certificatePem: string;
  atMs: number;
}

/** How a health stream ended, as the server saw it. */
export type HealthStreamEnd =
  | "open"
  /** The agent half-closed the stream (graceful stop). */
  | "graceful"
  /** The call was cancelled or the connection broke (crash, kill, network loss). */
  | "cancelled"
  /** The server ended it (PERMISSION_DENIED, or stop()). */
  | "server_closed";

/** One SubmitHealthReport call. */
export interface HealthStreamRecord {
  id: number;
  instanceId: string;
  openedAtMs: number;
  endedAtMs: number | undefined;
  end: HealthStreamEnd;
  reports: number;
}

/** One report received. */
export interface RecordedReport {
  instanceId: string;
  streamId: number;
  receivedAtMs: number;
  report: HealthReportRequest;
}

/** One SubmitPublicKeys call. */
export interface RecordedKeySubmission {
  instanceId: string;
  keys: Array<{ filename: string; publicKeyPem: string }>;
  atMs: number;
}

/** A file of a pushed patch. */
export interface FakePatchFile {
  filename: string;
  content: string | Buffer;
  lastModified?: Date;
}

interface OpenServerStream<T> {
  instanceId: string;
  call: ServerWritableStream<Empty, T>;
  open: boolean;
}

const DEFAULT_TENANT = "default";

/** See the file comment. */
export class FakeAgentServer {
  readonly pki: TestPki;
  /** Signs nonces that this server accepts. */
  readonly nonceKey: KeyObject;
  readonly clusterId: string;
  readonly shard: string;
  readonly registrations: RecordedRegistration[] = [];
  readonly healthStreams: HealthStreamRecord[] = [];
  readonly reports: RecordedReport[] = [];
  readonly keySubmissions: RecordedKeySubmission[] = [];
  /** Every RegisterAgent call, including refused ones (status code and message). */
  readonly registrationAttempts: Array<{ code: number; message: string }> = [];
  #role: "leader" | "standby";
  #answerHalfClose = true;
  readonly #certTtlMs: number | undefined;
  readonly #registered = new Set<string>();
  readonly #keyStreams: Array<OpenServerStream<KeyGenerationRequest>> = [];
  readonly #fileStreams: Array<OpenServerStream<FileTransfer>> = [];
  readonly #healthCalls = new Map<number, ServerReadableStream<HealthReportRequest, Empty>>();
  #registrationServer: Server | undefined;
  #agentServer: Server | undefined;
  #registrationPort = 0;
  #agentPort = 0;
  #nextStreamId = 1;

  private constructor(pki: TestPki, nonceKey: KeyObject, opts: FakeAgentServerOptions) {
    this.pki = pki;
    this.nonceKey = nonceKey;
    this.clusterId = opts.clusterId ?? "test-cluster";
    this.shard = opts.shard ?? "test-shard";
    this.#role = opts.role ?? "leader";
    this.#certTtlMs = opts.certTtlMs;
  }

  /** Creates the server (and a CA and nonce key unless given); call {@link start} next. */
  static async create(opts: FakeAgentServerOptions = {}): Promise<FakeAgentServer> {
    const pki = opts.pki ?? (await createTestPki(opts.clusterId ?? "test-cluster"));
    const nonceKey = opts.nonceKey ?? generateKeyPairSync("ed25519").privateKey;
    return new FakeAgentServer(pki, nonceKey, opts);
  }

  /** `localhost:port` of the registration service (anonymous TLS). */
  get registrationAddr(): string {
    return `localhost:${this.#registrationPort}`;
  }

  /** `localhost:port` of the agent service (mutual TLS). */
  get agentAddr(): string {
    return `localhost:${this.#agentPort}`;
  }

  /** Switches between leader and standby behaviour. */
  setRole(role: "leader" | "standby"): void {
    this.#role = role;
  }

  /** When false, a health stream's half-close is recorded but never answered (a hung server). */
  setAnswerHalfClose(answer: boolean): void {
    this.#answerHalfClose = answer;
  }

  /** Mints an agent nonce this server accepts (or, with `now` in the past, an expired one). */
  mintNonce(opts: {
    instanceId: string;
    configHash?: string;
    ttlMs?: number;
    now?: Date;
    signingKey?: KeyObject;
  }): Promise<string> {
    return mintNonceJwt(
      {
        subject: opts.instanceId,
        kind: "agent",
        clusterId: this.clusterId,
        shard: this.shard,
        group: "test",
        onDemand: false,
        tenant: DEFAULT_TENANT,
        configHash: opts.configHash ?? "",
      },
      {
        signingKey: opts.signingKey ?? this.nonceKey,
        ttlMs: opts.ttlMs ?? 3_600_000,
        now: opts.now,
      },
    );
  }

  /** Binds both services on 127.0.0.1 (the ports of the previous start, if any, else any). */
  async start(): Promise<void> {
    if (this.#registrationServer) throw new Error("fake agent server already started");
    const common = {
      "grpc.keepalive_time_ms": 20_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.max_receive_message_length": 4 * 1024 * 1024,
    };
    const reg = new Server(common);
    reg.addService(RegistrationServiceService, {
      registerAgent: (
        call: ServerUnaryCall<RegisterAgentRequest, RegisterAgentResponse>,
        cb: sendUnaryData<RegisterAgentResponse>,
      ) => {
        this.#registerAgent(call.request).then(
          (res) => {
            this.registrationAttempts.push({ code: status.OK, message: "" });
            cb(null, res);
          },
          (err: unknown) => {
            const e = toGrpcError(err, { logger: silentLogger });
            this.registrationAttempts.push({ code: e.code, message: e.details });
            cb(e);
          },
        );
      },
      registerOperator: (_call: unknown, cb: sendUnaryData<unknown>) => {
        cb({ code: status.UNIMPLEMENTED, details: "fake server: agents only" } as ServiceError);
      },
    });
    const agent = new Server(common);
    agent.addService(AgentServiceService, {
      receiveKeyRequests: (call: ServerWritableStream<Empty, KeyGenerationRequest>) =>
        this.#openServerStream(call, this.#keyStreams),
      receiveFiles: (call: ServerWritableStream<Empty, FileTransfer>) =>
        this.#openServerStream(call, this.#fileStreams),
      submitPublicKeys: (
        call: ServerUnaryCall<SubmitPublicKeysRequest, Empty>,
        cb: sendUnaryData<Empty>,
      ) => this.#submitPublicKeys(call, cb),
      submitHealthReport: (
        call: ServerReadableStream<HealthReportRequest, Empty>,
        cb: sendUnaryData<Empty>,
      ) => this.#submitHealthReport(call, cb),
    });
    const { pki } = this;
    this.#registrationPort = await bind(
      reg,
      this.#registrationPort,
      grpcServerCredentials({
        caCertPem: pki.caCertPem,
        certPem: pki.server.certPem,
        keyPem: pki.server.keyPem,
        requireClientCert: false,
      }),
    );
    this.#agentPort = await bind(
      agent,
      this.#agentPort,
      grpcServerCredentials({
        caCertPem: pki.caCertPem,
        certPem: pki.server.certPem,
        keyPem: pki.server.keyPem,
        requireClientCert: true,
      }),
    );
    this.#registrationServer = reg;
    this.#agentServer = agent;
  }

  /** Stops both services at once, dropping every connection (like a crash); records are kept. */
  async stop(): Promise<void> {
    for (const rec of this.healthStreams) {
      if (rec.end === "open") {
        rec.end = "server_closed";
        rec.endedAtMs = Date.now();
      }
    }
    for (const s of [...this.#keyStreams, ...this.#fileStreams]) s.open = false;
    this.#healthCalls.clear();
    const servers = [this.#registrationServer, this.#agentServer];
    this.#registrationServer = undefined;
    this.#agentServer = undefined;
    for (const s of servers) s?.forceShutdown();
    // Let the sockets close before a restart binds the same ports again.
    await new Promise((r) => setTimeout(r, 50));
  }

  /** Instance IDs with an open key request stream. */
  keyStreamInstances(): string[] {
    return this.#keyStreams.filter((s) => s.open).map((s) => s.instanceId);
  }

  /** Instance IDs with an open file stream. */
  fileStreamInstances(): string[] {
    return this.#fileStreams.filter((s) => s.open).map((s) => s.instanceId);
  }

  /** Sends a key generation request on the instance's open streams; returns how many got it. */
  sendKeyRequest(instanceId: string, keyNames: string[]): number {
    let n = 0;
    for (const s of this.#keyStreams) {
      if (s.open && s.instanceId === instanceId) {
        s.call.write({ keyNames });
        n++;
      }
    }
    return n;
  }

  /**
   * Sends a patch (files, then the commit message) on the instance's open file streams; returns
   * how many streams got it. `configHash` "" sends a commit without a hash (a malformed patch);
   * `commit: false` sends the files only (a patch cut off before its commit).
   */
  sendFilePatch(
    instanceId: string,
    files: FakePatchFile[],
    configHash: string,
    opts: { commit?: boolean } = {},
  ): number {
    let n = 0;
    for (const s of this.#fileStreams) {
      if (!s.open || s.instanceId !== instanceId) continue;
      for (const f of files) {
        s.call.write({
          filename: f.filename,
          content: Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content),
          lastModified: f.lastModified,
          configHash: "",
        });
      }
      if (opts.commit !== false) {
        s.call.write({
          filename: "",
          content: Buffer.alloc(0),
          lastModified: undefined,
          configHash,
        });
      }
      n++;
    }
    return n;
  }

  /** Ends (status OK) the instance's key and file streams, or everyone's. */
  endServerStreams(instanceId?: string): void {
    for (const s of [...this.#keyStreams, ...this.#fileStreams]) {
      if (s.open && (instanceId === undefined || s.instanceId === instanceId)) {
        s.open = false;
        s.call.end();
      }
    }
  }

  /** Reports from `instanceId`, oldest first. */
  reportsFrom(instanceId: string): HealthReportRequest[] {
    return this.reports.filter((r) => r.instanceId === instanceId).map((r) => r.report);
  }

  /** Polls `probe` every 25 ms until it returns a value other than undefined/false. */
  async waitFor<T>(
    what: string,
    probe: () => T | undefined | false,
    timeoutMs = 30_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async #registerAgent(req: RegisterAgentRequest): Promise<RegisterAgentResponse> {
    if (this.#role !== "leader") {
      throw new NstanceError(
        "precondition_failed",
        "this server is not the shard leader (standby)",
      );
    }
    const claims = await verifyNonceJwt(req.registrationNonceJwt, {
      verifyKey: this.nonceKey,
      kind: "agent",
      clusterId: this.clusterId,
      shard: this.shard,
    });
    if (this.#registered.has(claims.subject)) {
      throw new NstanceError("unauthenticated", "instance is already registered");
    }
    const issued = await issueClientCertificate({
      ca: this.pki.ca,
      publicKeyPem: req.publicKeyPem,
      clientId: claims.subject,
      tenant: claims.tenant,
      role: "agent",
      ttlMs: this.#certTtlMs,
    });
    this.#registered.add(claims.subject);
    this.registrations.push({
      request: req,
      instanceId: claims.subject,
      certificatePem: issued.certificatePem,
      atMs: Date.now(),
    });
    return {
      clientCertificatePem: Buffer.from(issued.certificatePem),
      expiresAt: issued.expiresAt,
    };
  }

  /** The caller's instance ID, or a ServiceError to answer with. */
  #caller(
    call: Parameters<typeof peerCertificate>[0],
  ): { instanceId: string } | { error: ServiceError } {
    if (this.#role !== "leader") {
      return { error: serviceError(status.FAILED_PRECONDITION, "not the shard leader (standby)") };
    }
    const der = peerCertificate(call);
    if (!der) return { error: serviceError(status.UNAUTHENTICATED, "no client certificate") };
    try {
      const id = parseClientIdentity(der);
      if (id.role !== "agent") {
        return { error: serviceError(status.PERMISSION_DENIED, `role ${id.role} is not agent`) };
      }
      return { instanceId: id.clientId };
    } catch (err) {
      return { error: toGrpcError(err, { logger: silentLogger }) };
    }
  }

  #openServerStream<T>(
    call: ServerWritableStream<Empty, T>,
    list: Array<OpenServerStream<T>>,
  ): void {
    const who = this.#caller(call);
    if ("error" in who) {
      // emit, not destroy: grpc-js sends a server stream's status when it ends, which a destroyed
      // stream skips, so the agent could miss the refusal and take the open call for a reached
      // server (test/agent/failover.test.ts failed that way on a busy machine).
      call.emit("error", who.error);
      return;
    }
    const entry: OpenServerStream<T> = { instanceId: who.instanceId, call, open: true };
    list.push(entry);
    call.on("cancelled", () => {
      entry.open = false;
    });
    call.on("error", () => {
      entry.open = false;
    });
  }

  #submitPublicKeys(
    call: ServerUnaryCall<SubmitPublicKeysRequest, Empty>,
    cb: sendUnaryData<Empty>,
  ): void {
    const who = this.#caller(call);
    if ("error" in who) {
      cb(who.error);
      return;
    }
    if (call.request.instanceId !== who.instanceId) {
      cb(serviceError(status.PERMISSION_DENIED, "instance_id does not match the certificate"));
      return;
    }
    this.keySubmissions.push({
      instanceId: who.instanceId,
      keys: call.request.keys.map((k) => ({
        filename: k.filename,
        publicKeyPem: k.publicKeyPem.toString("utf8"),
      })),
      atMs: Date.now(),
    });
    cb(null, {});
  }

  #submitHealthReport(
    call: ServerReadableStream<HealthReportRequest, Empty>,
    cb: sendUnaryData<Empty>,
  ): void {
    const who = this.#caller(call);
    if ("error" in who) {
      cb(who.error);
      return;
    }
    const rec: HealthStreamRecord = {
      id: this.#nextStreamId++,
      instanceId: who.instanceId,
      openedAtMs: Date.now(),
      endedAtMs: undefined,
      end: "open",
      reports: 0,
    };
    this.healthStreams.push(rec);
    this.#healthCalls.set(rec.id, call);
    const finish = (end: HealthStreamEnd): boolean => {
      if (rec.end !== "open") return false;
      rec.end = end;
      rec.endedAtMs = Date.now();
      this.#healthCalls.delete(rec.id);
      return true;
    };
    call.on("data", (report: HealthReportRequest) => {
      if (rec.end !== "open") return;
      if (report.instanceId !== who.instanceId) {
        if (finish("server_closed")) {
          cb(serviceError(status.PERMISSION_DENIED, "instance_id does not match the certificate"));
        }
        return;
      }
      rec.reports++;
      this.reports.push({
        instanceId: who.instanceId,
        streamId: rec.id,
        receivedAtMs: Date.now(),
        report,
      });
    });
    call.on("end", () => {
      // Node's http2 also ends the request stream when the connection drops (kill -9); grpc-js
      // then reports the cancellation within the same turn of the event loop. Only a real
      // half-close leaves the call alive one macrotask later. (Judge before answering: grpc-js
      // flags every call as cancelled once its status has been sent.)
      setImmediate(() => {
        if (call.cancelled) finish("cancelled");
        else if (finish("graceful") && this.#answerHalfClose) cb(null, {});
      });
    });
    call.on("cancelled", () => finish("cancelled"));
    call.on("error", () => finish("cancelled"));
  }
}

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

function bind(
  server: Server,
  port: number,
  creds: ReturnType<typeof grpcServerCredentials>,
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, creds, (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
}
