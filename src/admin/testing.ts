// SPDX-License-Identifier: Apache-2.0
/**
 * Test helpers for the admin: in-process fake Operator and Registration servers over real TLS 1.3
 * with certificates from a test CA, and an AdminIo that captures output. Not for production code.
 */
import type { KeyObject } from "node:crypto";
import {
  Server,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { CertificateAuthority } from "../pki/ca.js";
import { parseClientIdentity } from "../pki/client-identity.js";
import { issueClientCertificate } from "../pki/issue-certificate.js";
import { verifyNonceJwt } from "../pki/nonce-jwt.js";
import type { TestPki } from "../pki/testing.js";
import { grpcServerCredentials } from "../pki/tls-options.js";
import type { Empty } from "../protocol/gen/google/protobuf/empty.js";
import {
  type DeleteGroupRequest,
  type GetConfigStatusResponse,
  type GroupStatus,
  type ListGroupsResponse,
  OperatorServiceService,
  type RefreshConfigResponse,
  type UpsertGroupRequest,
  type UpsertGroupResponse,
} from "../protocol/gen/nstance/v1/operator.js";
import {
  type RegisterOperatorRequest,
  type RegisterOperatorResponse,
  RegistrationServiceService,
} from "../protocol/gen/nstance/v1/registration.js";
import { peerCertificate } from "../protocol/peer-certificate.js";
import { toGrpcError } from "../protocol/to-grpc-error.js";
import { NstanceError } from "../shared/errors.js";
import { silentLogger } from "../shared/logger.js";
import type { AdminIo } from "./command-context.js";

/** An AdminIo whose output is kept in strings. */
export interface CapturedIo extends AdminIo {
  out: () => string;
  err: () => string;
}

/** Creates a {@link CapturedIo} with the given environment and standard input. */
export function captureIo(
  env: Record<string, string | undefined> = {},
  stdin?: string,
): CapturedIo {
  let out = "";
  let err = "";
  return {
    env,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    ...(stdin !== undefined ? { readStdin: async () => stdin } : {}),
    out: () => out,
    err: () => err,
  };
}

/** A group as the fake server stores it. */
export function testGroup(g: Partial<GroupStatus> & { key: string }): GroupStatus {
  return {
    tenant: "default",
    template: "web",
    size: 0,
    instanceType: "",
    subnetPool: "",
    vars: {},
    isStatic: false,
    etag: `etag-${g.key}`,
    actualSize: 0,
    providerIds: [],
    ...g,
  };
}

type Callback<T> = sendUnaryData<T>;

function fail<T>(cb: Callback<T>, err: NstanceError): void {
  cb(toGrpcError(err, { logger: silentLogger }) as ServiceError, null);
}

async function listen(server: Server, pki: TestPki, requireClientCert: boolean): Promise<number> {
  const creds = grpcServerCredentials({
    caCertPem: pki.caCertPem,
    certPem: pki.server.certPem,
    keyPem: pki.server.keyPem,
    requireClientCert,
  });
  return new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", creds, (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}

/**
 * A fake Operator API of one shard: groups in memory, tenant from the client certificate, and
 * switches to make mutations fail as on a standby or to make refresh refuse a config.
 */
export class FakeOperatorServer {
  /** Groups by `tenant/key`. */
  readonly groups = new Map<string, GroupStatus>();
  /** RPC names in call order. */
  readonly calls: string[] = [];
  /** When set, mutating calls fail with FAILED_PRECONDITION and this message. */
  notLeaderMessage: string | undefined;
  /** When set, RefreshConfig fails with INVALID_ARGUMENT and this message. */
  refreshError: string | undefined;
  /**
   * When above 0, that many ListGroups calls fail with UNAVAILABLE (a server stopping mid-call:
   * the client cannot tell whether the call ran).
   */
  failListGroups = 0;
  configEtag = "etag-1";
  readonly #server = new Server();
  #port = 0;

  /** The dial address (`localhost:port`, a name in the test server certificate). */
  get address(): string {
    return `localhost:${this.#port}`;
  }

  /** Adds a group to the store. */
  addGroup(g: Partial<GroupStatus> & { key: string }): void {
    const group = testGroup(g);
    this.groups.set(`${group.tenant}/${group.key}`, group);
  }

  /** Listens on 127.0.0.1 with mutual TLS. */
  async start(pki: TestPki): Promise<this> {
    const impl: UntypedServiceImplementation = {
      listGroups: (
        call: ServerUnaryCall<Empty, ListGroupsResponse>,
        cb: Callback<ListGroupsResponse>,
      ) => {
        const tenant = this.#tenant(call, "ListGroups");
        if (this.failListGroups > 0) {
          this.failListGroups--;
          fail(cb, new NstanceError("unavailable", "server shutting down"));
          return;
        }
        cb(null, {
          groups: [...this.groups.values()]
            .filter((g) => g.tenant === tenant)
            .sort((a, b) => a.key.localeCompare(b.key)),
        });
      },
      upsertGroup: (
        call: ServerUnaryCall<UpsertGroupRequest, UpsertGroupResponse>,
        cb: Callback<UpsertGroupResponse>,
      ) => {
        const tenant = this.#tenant(call, "UpsertGroup");
        if (this.notLeaderMessage) {
          fail(cb, new NstanceError("precondition_failed", this.notLeaderMessage));
          return;
        }
        const { key, config } = call.request;
        if (!key || !config) {
          fail(cb, new NstanceError("invalid_argument", "key and config are required"));
          return;
        }
        const existing = this.groups.get(`${tenant}/${key}`);
        if (!existing && !config.template) {
          fail(
            cb,
            new NstanceError("invalid_argument", `groups.${tenant}.${key}.template: required`),
          );
          return;
        }
        const next = testGroup({
          ...existing,
          key,
          tenant,
          size: config.size,
          ...(config.template ? { template: config.template } : {}),
          ...(config.instanceType ? { instanceType: config.instanceType } : {}),
          ...(config.subnetPool ? { subnetPool: config.subnetPool } : {}),
          vars: { ...existing?.vars, ...config.vars },
        });
        this.groups.set(`${tenant}/${key}`, next);
        cb(null, { group: next });
      },
      deleteGroup: (call: ServerUnaryCall<DeleteGroupRequest, Empty>, cb: Callback<Empty>) => {
        const tenant = this.#tenant(call, "DeleteGroup");
        if (this.notLeaderMessage) {
          fail(cb, new NstanceError("precondition_failed", this.notLeaderMessage));
          return;
        }
        const id = `${tenant}/${call.request.key}`;
        const g = this.groups.get(id);
        if (!g) {
          fail(cb, new NstanceError("not_found", `group ${id} does not exist`));
          return;
        }
        if (g.isStatic) {
          fail(
            cb,
            new NstanceError("invalid_argument", `group ${id} is defined in the static config`),
          );
          return;
        }
        this.groups.delete(id);
        cb(null, {});
      },
      getConfigStatus: (
        call: ServerUnaryCall<Empty, GetConfigStatusResponse>,
        cb: Callback<GetConfigStatusResponse>,
      ) => {
        this.#tenant(call, "GetConfigStatus");
        cb(null, {
          etag: this.configEtag,
          lastModified: new Date("2025-01-02T03:04:05Z"),
          size: 1234,
        });
      },
      refreshConfig: (
        call: ServerUnaryCall<Empty, RefreshConfigResponse>,
        cb: Callback<RefreshConfigResponse>,
      ) => {
        this.#tenant(call, "RefreshConfig");
        if (this.refreshError) {
          fail(cb, new NstanceError("invalid_argument", this.refreshError));
          return;
        }
        const prevEtag = this.configEtag;
        this.configEtag = "etag-2";
        cb(null, { updated: prevEtag !== this.configEtag, prevEtag, etag: this.configEtag });
      },
    };
    this.#server.addService(OperatorServiceService, impl);
    this.#port = await listen(this.#server, pki, true);
    return this;
  }

  /** Stops listening. */
  stop(): Promise<void> {
    return shutdown(this.#server);
  }

  #tenant(call: ServerUnaryCall<unknown, unknown>, rpc: string): string {
    this.calls.push(rpc);
    const der = peerCertificate(call);
    if (!der) throw new Error("no client certificate");
    return parseClientIdentity(der).tenant;
  }
}

/** What {@link FakeRegistrationServer} signs and verifies with. */
export interface FakeRegistrationOptions {
  ca: CertificateAuthority;
  nonceVerifyKey: KeyObject;
  clusterId: string;
}

/** A fake Registration API that registers operators the way the reference does (nonce → cert). */
export class FakeRegistrationServer {
  /** The public key each nonce was first used with (the reference's binding). */
  readonly boundKeys = new Map<string, string>();
  readonly #opts: FakeRegistrationOptions;
  readonly #server = new Server();
  #port = 0;

  constructor(opts: FakeRegistrationOptions) {
    this.#opts = opts;
  }

  /** The dial address. */
  get address(): string {
    return `localhost:${this.#port}`;
  }

  /** Listens on 127.0.0.1 with server-authenticated TLS. */
  async start(pki: TestPki): Promise<this> {
    const impl: UntypedServiceImplementation = {
      registerOperator: (
        call: ServerUnaryCall<RegisterOperatorRequest, RegisterOperatorResponse>,
        cb: Callback<RegisterOperatorResponse>,
      ) => {
        void this.#register(call.request).then(
          (res) => cb(null, res),
          (err: unknown) => cb(toGrpcError(err, { logger: silentLogger }) as ServiceError, null),
        );
      },
    };
    this.#server.addService(RegistrationServiceService, impl);
    this.#port = await listen(this.#server, pki, false);
    return this;
  }

  /** Stops listening. */
  stop(): Promise<void> {
    return shutdown(this.#server);
  }

  async #register(req: RegisterOperatorRequest): Promise<RegisterOperatorResponse> {
    const nonce = await verifyNonceJwt(req.registrationNonceJwt, {
      verifyKey: this.#opts.nonceVerifyKey,
      kind: "operator",
      clusterId: this.#opts.clusterId,
    });
    const pem = req.publicKeyPem.toString("utf8");
    const bound = this.boundKeys.get(req.registrationNonceJwt);
    if (bound !== undefined && bound !== pem) {
      throw new NstanceError(
        "unauthenticated",
        "registration nonce was already used by another key",
      );
    }
    this.boundKeys.set(req.registrationNonceJwt, pem);
    const issued = await issueClientCertificate({
      ca: this.#opts.ca,
      publicKeyPem: pem,
      clientId: nonce.subject,
      tenant: nonce.tenant,
      role: "operator",
    });
    return {
      clientCertificatePem: Buffer.from(issued.certificatePem),
      expiresAt: issued.expiresAt,
    };
  }
}
