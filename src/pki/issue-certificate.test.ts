// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  loadCertificateAuthority,
} from "./ca.js";
import { parseClientIdentity } from "./client-identity.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import {
  DEFAULT_CLIENT_CERT_TTL_MS,
  issueClientCertificate,
  issueServerCertificate,
} from "./issue-certificate.js";
import { ROLE_EXTENSION_OID } from "./role-extension.js";
import { x509 } from "./x509.js";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

describe("issueServerCertificate / issueClientCertificate", () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await loadCertificateAuthority(await createCertificateAuthority({ clusterId: "c1" }));
  });

  it("issues a server certificate with the given and default SANs and serverAuth", async () => {
    const keys = generateEd25519KeyPair();
    const issued = await issueServerCertificate({
      ca,
      publicKeyPem: keys.publicKeyPem,
      hosts: ["server-1.internal", "10.0.0.5", "fd00::5"],
    });
    const cert = new X509Certificate(issued.certificatePem);
    assert.ok(cert.checkIssued(new X509Certificate(ca.certPem)));
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH]);
    assert.equal(cert.subject, "CN=server-1.internal");
    const sans = cert.subjectAltName?.split(", ") ?? [];
    for (const want of [
      "DNS:server-1.internal",
      "IP Address:10.0.0.5",
      "IP Address:FD00:0:0:0:0:0:0:5",
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "IP Address:0:0:0:0:0:0:0:1",
      "DNS:nstance-server",
    ]) {
      assert.ok(sans.includes(want), `${want} in ${cert.subjectAltName}`);
    }
    assert.ok(cert.checkHost("localhost"));
    assert.ok(cert.checkIP("127.0.0.1"));
    assert.ok(cert.checkHost("server-1.internal"));
    assert.equal(cert.checkHost("elsewhere.example"), undefined);
  });

  it("issues a client certificate that parseClientIdentity reads back", async () => {
    const now = new Date("2025-06-01T12:00:00Z");
    const keys = generateEd25519KeyPair();
    const issued = await issueClientCertificate({
      ca,
      publicKeyPem: keys.publicKeyPem,
      clientId: "knc06bgm7733st2576nx5jht4ecjw",
      tenant: "team-a",
      role: "agent",
      now,
    });
    assert.equal(issued.expiresAt.getTime(), now.getTime() + DEFAULT_CLIENT_CERT_TTL_MS);
    const cert = new X509Certificate(issued.certificatePem);
    assert.deepEqual(cert.keyUsage, [CLIENT_AUTH]);
    assert.equal(cert.publicKey.export({ type: "spki", format: "pem" }), keys.publicKeyPem);
    const ext = new x509.X509Certificate(issued.certificatePem).getExtension(ROLE_EXTENSION_OID);
    assert.equal(ext?.critical, false);
    assert.deepEqual(Buffer.from(ext!.value), Buffer.from([0x0c, 5, ...Buffer.from("agent")]));
    for (const input of [issued.certificatePem, cert.raw]) {
      assert.deepEqual(parseClientIdentity(input), {
        clientId: "knc06bgm7733st2576nx5jht4ecjw",
        tenant: "team-a",
        role: "agent",
        serial: issued.serial,
        notAfter: issued.expiresAt,
      });
    }
  });

  it("honours the TTL and gives every certificate a unique serial", async () => {
    const keys = generateEd25519KeyPair();
    const now = new Date();
    const serials = new Set<string>();
    const all = await Promise.all(
      Array.from({ length: 50 }, () =>
        issueClientCertificate({
          ca,
          publicKeyPem: keys.publicKeyPem,
          clientId: "opr1",
          tenant: "default",
          role: "operator",
          ttlMs: 3_600_000,
          now,
        }),
      ),
    );
    for (const c of all) {
      serials.add(c.serial);
      // X.509 times have second precision.
      assert.equal(c.expiresAt.getTime(), Math.floor((now.getTime() + 3_600_000) / 1000) * 1000);
    }
    assert.equal(serials.size, 50);
  });

  it("rejects non-Ed25519 public keys with a clear error", async () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    for (const [pem, type] of [
      [rsa, "rsa"],
      [ec, "ec"],
    ] as const) {
      await assert.rejects(
        issueClientCertificate({
          ca,
          publicKeyPem: pem,
          clientId: "x",
          tenant: "t",
          role: "agent",
        }),
        (err: unknown) =>
          err instanceof NstanceError &&
          err.code === "invalid_argument" &&
          err.message === `public key must be Ed25519, got ${type}`,
      );
    }
    await assert.rejects(
      issueServerCertificate({ ca, publicKeyPem: "garbage" }),
      /not a valid PKIX PEM public key/,
    );
  });

  it("a leaf certificate cannot be loaded as a CA", async () => {
    const keys = generateEd25519KeyPair();
    const issued = await issueServerCertificate({ ca, publicKeyPem: keys.publicKeyPem });
    await assert.rejects(
      loadCertificateAuthority({ certPem: issued.certificatePem, keyPem: keys.privateKeyPem }),
      /not marked as a CA/,
    );
  });
});
