// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import {
  CA_COMMON_NAME,
  createCertificateAuthority,
  DEFAULT_CA_TTL_MS,
  loadCertificateAuthority,
} from "./ca.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import { x509 } from "./x509.js";

describe("createCertificateAuthority", () => {
  it("creates a self-signed Ed25519 CA with pathLen 1 valid for 10 years", async () => {
    const now = new Date("2025-01-01T00:00:00Z");
    const pem = await createCertificateAuthority({ clusterId: "prod-1", now });
    const cert = new X509Certificate(pem.certPem);
    assert.equal(cert.ca, true);
    assert.equal(cert.subject, `CN=${CA_COMMON_NAME}\nO=Nstance Cluster prod-1`);
    assert.equal(cert.issuer, cert.subject);
    assert.equal(cert.publicKey.asymmetricKeyType, "ed25519");
    assert.ok(cert.verify(cert.publicKey), "self-signature verifies");
    assert.equal(new Date(cert.validTo).getTime(), now.getTime() + DEFAULT_CA_TTL_MS);
    assert.ok(new Date(cert.validFrom).getTime() <= now.getTime());
    const parsed = new x509.X509Certificate(pem.certPem);
    const bc = parsed.getExtension(x509.BasicConstraintsExtension);
    assert.equal(bc?.ca, true);
    assert.equal(bc?.pathLength, 1);
    assert.equal(bc?.critical, true);
    const ku = parsed.getExtension(x509.KeyUsagesExtension);
    assert.ok(ku && ku.usages & x509.KeyUsageFlags.keyCertSign);
    assert.match(pem.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  });

  it("gives each CA a different serial", async () => {
    const a = new X509Certificate((await createCertificateAuthority({ clusterId: "c" })).certPem);
    const b = new X509Certificate((await createCertificateAuthority({ clusterId: "c" })).certPem);
    assert.notEqual(a.serialNumber, b.serialNumber);
  });
});

describe("loadCertificateAuthority", () => {
  it("loads a CA and keeps the certificate bytes as given", async () => {
    const pem = await createCertificateAuthority({ clusterId: "c" });
    const ca = await loadCertificateAuthority(pem);
    assert.equal(ca.certPem, pem.certPem);
    assert.equal(ca.privateKey.asymmetricKeyType, "ed25519");
    assert.equal(ca.signingKey.algorithm.name, "Ed25519");
  });

  it("rejects a key that does not belong to the certificate", async () => {
    const pem = await createCertificateAuthority({ clusterId: "c" });
    const other = generateEd25519KeyPair();
    await assert.rejects(
      loadCertificateAuthority({ certPem: pem.certPem, keyPem: other.privateKeyPem }),
      (err: unknown) =>
        err instanceof NstanceError &&
        err.code === "invalid_argument" &&
        /does not match/.test(err.message),
    );
  });

  it("rejects garbage", async () => {
    const pem = await createCertificateAuthority({ clusterId: "c" });
    await assert.rejects(
      loadCertificateAuthority({ certPem: "not a cert", keyPem: pem.keyPem }),
      /not a valid PEM certificate/,
    );
  });
});
