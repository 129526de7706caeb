// SPDX-License-Identifier: Apache-2.0
// The early end-to-end check of the identity stack: a real grpc-js server and client over TLS 1.3
// with Ed25519 certificates from our CA, using services from the generated code.
import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { type ConnectionOptions, connect, type TLSSocket } from "node:tls";
import {
  type ChannelCredentials,
  Metadata,
  Server,
  type ServerCredentials,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import {
  type GetConfigStatusResponse,
  OperatorServiceClient,
  OperatorServiceService,
} from "../protocol/gen/nstance/v1/operator.js";
import {
  type RegisterAgentResponse,
  RegistrationServiceClient,
  RegistrationServiceService,
} from "../protocol/gen/nstance/v1/registration.js";
import { peerCertificate } from "../protocol/peer-certificate.js";
import { parseClientIdentity } from "./client-identity.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import { issueServerCertificate } from "./issue-certificate.js";
import { createTestPki, issueTestClientCertificate, type TestPki } from "./testing.js";
import {
  clientTlsOptions,
  grpcChannelCredentials,
  grpcServerCredentials,
  type Tls13ServerCredentials,
} from "./tls-options.js";

const DEADLINE_MS = 10_000;

async function listen(
  creds: ServerCredentials,
  add: (server: Server) => void,
): Promise<{ server: Server; port: number }> {
  const server = new Server();
  add(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, port };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.tryShutdown(() => resolve()));
}

/** Calls GetConfigStatus; resolves with the response or the ServiceError. */
function getConfigStatus(
  port: number,
  creds: ChannelCredentials,
): Promise<GetConfigStatusResponse | ServiceError> {
  const client = new OperatorServiceClient(`localhost:${port}`, creds);
  return new Promise((resolve) => {
    client.getConfigStatus(
      {},
      new Metadata(),
      { deadline: Date.now() + DEADLINE_MS },
      (err, res) => {
        client.close();
        resolve(err ?? res);
      },
    );
  });
}

function isServiceError(v: unknown): v is ServiceError {
  return v instanceof Error && typeof (v as ServiceError).code === "number";
}

/** Opens a raw TLS connection; resolves with the socket once the handshake and 100 ms passed. */
async function rawTls(
  port: number,
  opts: ConnectionOptions,
): Promise<{ socket?: TLSSocket; error?: Error }> {
  const socket = connect({ host: "localhost", port, ALPNProtocols: ["h2"], ...opts });
  try {
    await once(socket, "secureConnect");
    // TLS 1.3 servers reject a client certificate after the client's handshake completes.
    await new Promise((r) => setTimeout(r, 100));
    return { socket };
  } catch (error) {
    socket.destroy();
    return { error: error as Error };
  }
}

describe("gRPC over TLS 1.3 with Ed25519 certificates", () => {
  let pki: TestPki;
  let otherPki: TestPki;
  let mtls: { server: Server; port: number };
  let mtlsCreds: Tls13ServerCredentials;
  const calls: string[] = [];

  before(async () => {
    pki = await createTestPki("cluster-a");
    otherPki = await createTestPki("cluster-b");
    mtlsCreds = grpcServerCredentials({
      caCertPem: pki.caCertPem,
      certPem: pki.server.certPem,
      keyPem: pki.server.keyPem,
      requireClientCert: true,
    });
    mtls = await listen(mtlsCreds, (server) =>
      server.addService(OperatorServiceService, {
        getConfigStatus(
          call: Parameters<typeof peerCertificate>[0],
          cb: (e: null, r: unknown) => void,
        ) {
          const der = peerCertificate(call);
          assert.ok(der, "handler sees the verified peer certificate");
          const id = parseClientIdentity(der);
          calls.push(id.clientId);
          cb(null, { etag: `${id.role}/${id.tenant}/${id.clientId}`, size: 7 });
        },
      }),
    );
  });

  after(async () => {
    await closeServer(mtls.server);
  });

  it("accepts a client certificate from the cluster CA and exposes it to the handler", async () => {
    const client = await issueTestClientCertificate(pki.ca, {
      clientId: "inst-1",
      tenant: "tenant-a",
      role: "agent",
    });
    const res = await getConfigStatus(
      mtls.port,
      grpcChannelCredentials({ caCertPem: pki.caCertPem, ...client }),
    );
    assert.ok(!isServiceError(res), `call failed: ${isServiceError(res) ? res.message : ""}`);
    assert.equal(res.etag, "agent/tenant-a/inst-1");
    assert.equal(res.size, 7);
  });

  it("negotiates TLS 1.3", async () => {
    const client = await issueTestClientCertificate(pki.ca, { clientId: "inst-2", role: "agent" });
    const { socket, error } = await rawTls(
      mtls.port,
      clientTlsOptions({ caCertPem: pki.caCertPem, ...client }),
    );
    assert.equal(error, undefined);
    assert.equal(socket?.getProtocol(), "TLSv1.3");
    assert.equal(socket?.alpnProtocol, "h2");
    socket?.destroy();
  });

  it("refuses a client certificate from another CA", async () => {
    const before = calls.length;
    const client = await issueTestClientCertificate(otherPki.ca, {
      clientId: "intruder",
      role: "operator",
    });
    const res = await getConfigStatus(
      mtls.port,
      grpcChannelCredentials({ caCertPem: pki.caCertPem, ...client }),
    );
    assert.ok(isServiceError(res), "call must fail");
    assert.equal(res.code, status.UNAVAILABLE);
    assert.equal(calls.length, before, "handler never ran");
  });

  it("refuses a CA-signed certificate without the clientAuth EKU", async () => {
    const before = calls.length;
    // A server certificate (EKU serverAuth) from the right CA, presented as a client certificate.
    const res = await getConfigStatus(
      mtls.port,
      grpcChannelCredentials({ caCertPem: pki.caCertPem, ...pki.server }),
    );
    assert.ok(isServiceError(res), "call must fail");
    assert.equal(res.code, status.UNAVAILABLE);
    assert.equal(calls.length, before);
  });

  it("refuses a client without a certificate", async () => {
    const before = calls.length;
    const res = await getConfigStatus(
      mtls.port,
      grpcChannelCredentials({ caCertPem: pki.caCertPem }),
    );
    assert.ok(isServiceError(res), "call must fail");
    assert.equal(res.code, status.UNAVAILABLE);
    assert.equal(calls.length, before);
  });

  it("refuses a TLS 1.2-only client", async () => {
    const client = await issueTestClientCertificate(pki.ca, { clientId: "old", role: "agent" });
    const { socket, error } = await rawTls(mtls.port, {
      ...clientTlsOptions({ caCertPem: pki.caCertPem, ...client }),
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
    });
    socket?.destroy();
    assert.ok(error, "handshake must fail");
    assert.match(
      String((error as NodeJS.ErrnoException).code),
      /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL/,
    );
  });

  it("client refuses a server whose certificate is from another CA", async () => {
    const client = await issueTestClientCertificate(otherPki.ca, {
      clientId: "inst-3",
      role: "agent",
    });
    const res = await getConfigStatus(
      mtls.port,
      grpcChannelCredentials({ caCertPem: otherPki.caCertPem, ...client }),
    );
    assert.ok(isServiceError(res));
    assert.equal(res.code, status.UNAVAILABLE);
  });

  it("update() serves a new certificate to new connections", async () => {
    const client = await issueTestClientCertificate(pki.ca, { clientId: "inst-4", role: "agent" });
    const opts = clientTlsOptions({ caCertPem: pki.caCertPem, ...client });
    const first = await rawTls(mtls.port, opts);
    const oldSerial = first.socket?.getPeerCertificate().serialNumber;
    first.socket?.destroy();
    // Same CA as clients trust, new server certificate.
    const keys = generateEd25519KeyPair();
    const issued = await issueServerCertificate({ ca: pki.ca, publicKeyPem: keys.publicKeyPem });
    mtlsCreds.update({
      caCertPem: pki.caCertPem,
      certPem: issued.certificatePem,
      keyPem: keys.privateKeyPem,
    });
    const second = await rawTls(mtls.port, opts);
    assert.equal(second.error, undefined);
    const newSerial = second.socket?.getPeerCertificate().serialNumber;
    second.socket?.destroy();
    assert.ok(oldSerial && newSerial);
    assert.notEqual(newSerial, oldSerial);
    assert.equal(newSerial?.toLowerCase(), issued.serial);
  });
});

describe("anonymous TLS (registration)", () => {
  let pki: TestPki;
  let anon: { server: Server; port: number };
  const peers: Array<Buffer | undefined> = [];

  before(async () => {
    pki = await createTestPki();
    anon = await listen(
      grpcServerCredentials({
        caCertPem: pki.caCertPem,
        certPem: pki.server.certPem,
        keyPem: pki.server.keyPem,
        requireClientCert: false,
      }),
      (server) =>
        server.addService(RegistrationServiceService, {
          registerAgent(
            call: Parameters<typeof peerCertificate>[0],
            cb: (e: null, r: unknown) => void,
          ) {
            peers.push(peerCertificate(call));
            cb(null, { clientCertificatePem: Buffer.from("cert"), expiresAt: new Date(0) });
          },
        }),
    );
  });

  after(async () => {
    await closeServer(anon.server);
  });

  it("serves a client without a certificate; the handler sees no peer certificate", async () => {
    const client = new RegistrationServiceClient(
      `localhost:${anon.port}`,
      grpcChannelCredentials({ caCertPem: pki.caCertPem }),
    );
    const res = await new Promise<RegisterAgentResponse | ServiceError>((resolve) => {
      client.registerAgent(
        {
          registrationNonceJwt: "x",
          publicKeyPem: Buffer.alloc(0),
          privateIpv4: "",
          privateIpv6: "",
          hostname: "",
        },
        new Metadata(),
        { deadline: Date.now() + DEADLINE_MS },
        (err, r) => resolve(err ?? r),
      );
    });
    client.close();
    assert.ok(!isServiceError(res), isServiceError(res) ? res.message : "");
    assert.equal(res.clientCertificatePem.toString(), "cert");
    assert.deepEqual(res.expiresAt, new Date(0));
    assert.deepEqual(peers, [undefined]);
  });
});
