// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import fc from "fast-check";
import { NstanceError } from "../shared/errors.js";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  loadCertificateAuthority,
} from "./ca.js";
import { parseClientIdentity } from "./client-identity.js";
import { generateEd25519KeyPair, parseEd25519PublicKey, toCryptoKey } from "./ed25519-keys.js";
import { ROLE_EXTENSION_OID, roleExtension } from "./role-extension.js";
import { x509 } from "./x509.js";

function roleExt(tag: number, text: string): x509.Extension {
  const b = Buffer.from(text);
  return new x509.Extension(ROLE_EXTENSION_OID, false, Buffer.from([tag, b.length, ...b]));
}

describe("parseClientIdentity", () => {
  let ca: CertificateAuthority;
  before(async () => {
    ca = await loadCertificateAuthority(await createCertificateAuthority({ clusterId: "c" }));
  });

  /** Signs an arbitrary client certificate, to build the malformed ones issue code never makes. */
  async function craft(subject: x509.JsonName, extensions: x509.Extension[]): Promise<string> {
    const publicKey = await toCryptoKey(
      parseEd25519PublicKey(generateEd25519KeyPair().publicKeyPem),
    );
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: "01",
      subject,
      issuer: ca.cert.subjectName,
      notAfter: new Date(Date.now() + 3_600_000),
      publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: { name: "Ed25519" },
      extensions,
    });
    return cert.toString("pem");
  }

  const rejects = (pem: string, pattern: RegExp): void => {
    assert.throws(
      () => parseClientIdentity(pem),
      (err: unknown) =>
        err instanceof NstanceError && err.code === "unauthenticated" && pattern.test(err.message),
    );
  };

  it("accepts a Go-style PrintableString role", async () => {
    const pem = await craft([{ CN: ["i1"] }, { O: ["t1"] }], [roleExt(0x13, "operator")]);
    const id = parseClientIdentity(pem);
    assert.equal(id.role, "operator");
    assert.equal(id.tenant, "t1");
    assert.equal(id.clientId, "i1");
    assert.equal(id.serial, "01");
  });

  it("rejects a certificate without O", async () => {
    rejects(
      await craft([{ CN: ["i1"] }], [roleExtension("agent")]),
      /exactly one subject O.*found 0/,
    );
  });

  it("rejects a certificate with two O", async () => {
    const pem = await craft(
      [{ CN: ["i1"] }, { O: ["t1"] }, { O: ["t2"] }],
      [roleExtension("agent")],
    );
    rejects(pem, /exactly one subject O.*found 2/);
  });

  it("rejects a certificate without CN", async () => {
    rejects(await craft([{ O: ["t1"] }], [roleExtension("agent")]), /no subject CN/);
  });

  it("rejects a certificate without the role extension", async () => {
    rejects(await craft([{ CN: ["i1"] }, { O: ["t1"] }], []), /role extension/);
  });

  it("rejects an unknown role", async () => {
    rejects(
      await craft([{ CN: ["i1"] }, { O: ["t1"] }], [roleExt(0x0c, "admin")]),
      /unknown role "admin"/,
    );
  });

  it("rejects a malformed role value", async () => {
    const bad = new x509.Extension(ROLE_EXTENSION_OID, false, Buffer.from([0x0c, 9, 0x61]));
    rejects(await craft([{ CN: ["i1"] }, { O: ["t1"] }], [bad]), /malformed role/);
    rejects(
      await craft([{ CN: ["i1"] }, { O: ["t1"] }], [roleExt(0x04, "agent")]),
      /malformed role/,
    );
  });

  it("rejects bytes that are not a certificate", () => {
    rejects("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", /cannot be parsed/);
    assert.throws(() => parseClientIdentity(Buffer.from("junk")), /cannot be parsed/);
  });

  it("reads the same fields as @peculiar/x509 (serials, names, times, string types)", async () => {
    const cases: Array<[x509.JsonName, string]> = [
      [[{ CN: ["web06h0hz4pysves9f77ea5m8smjm"] }, { O: ["default"] }], "agent"],
      [[{ O: ["t-2"] }, { CN: ["op-ñ-ü"] }, { OU: ["ignored"] }], "operator"],
      [[{ CN: ["x".repeat(200)] }, { O: ["tenant"] }], "agent"],
    ];
    for (const [subject, role] of cases) {
      for (let i = 0; i < 20; i++) {
        const pem = await craftWithSerial(subject, role, i);
        const ref = new x509.X509Certificate(pem);
        const id = parseClientIdentity(pem);
        assert.equal(id.serial, ref.serialNumber.toLowerCase());
        assert.equal(id.notAfter.getTime(), ref.notAfter.getTime());
        assert.equal(id.clientId, ref.subjectName.getField("CN")[0]);
        assert.equal(id.tenant, ref.subjectName.getField("O")[0]);
        assert.equal(id.role, role);
        assert.deepEqual(parseClientIdentity(new Uint8Array(ref.rawData)), id);
      }
    }
  });

  it("never throws anything but unauthenticated for a mutated certificate", async () => {
    const der = Buffer.from(
      new x509.X509Certificate(
        await craft([{ CN: ["i1"] }, { O: ["t1"] }], [roleExtension("agent")]),
      ).rawData,
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.nat(der.length),
        (edits, cut) => {
          const b = Buffer.from(der.subarray(0, Math.max(cut, 1)));
          for (const [at, v] of edits) if (at < b.length) b[at] = v;
          try {
            const id = parseClientIdentity(b);
            assert.equal(typeof id.clientId, "string");
          } catch (err) {
            assert.ok(err instanceof NstanceError && err.code === "unauthenticated", String(err));
          }
        },
      ),
      { numRuns: 3000, seed: 20_261_123 },
    );
  });

  /** A certificate with a serial that varies in length and in its high bit. */
  async function craftWithSerial(subject: x509.JsonName, role: string, i: number): Promise<string> {
    const publicKey = await toCryptoKey(
      parseEd25519PublicKey(generateEd25519KeyPair().publicKeyPem),
    );
    const serial = ["7f", "01", "ff", "80"][i % 4]! + "a5".repeat(i % 17);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject,
      issuer: ca.cert.subjectName,
      notBefore: new Date(Date.UTC(2049 + (i % 3), i % 12, 1 + i, i, i, i)),
      notAfter: new Date(Date.UTC(2049 + (i % 3), i % 12, 2 + i, i, i, i)),
      publicKey,
      signingKey: ca.signingKey,
      signingAlgorithm: { name: "Ed25519" },
      extensions: [roleExt(i % 2 === 0 ? 0x0c : 0x13, role)],
    });
    return cert.toString("pem");
  }
});
