// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { before, describe, it } from "node:test";
import type { CertificateConfig } from "../../config/server-config.js";
import { generateEd25519KeyPair } from "../../pki/ed25519-keys.js";
import { createTestPki, type TestPki } from "../../pki/testing.js";
import { NstanceError } from "../../shared/errors.js";
import { MemoryStorage } from "../../storage/memory-storage.js";
import { certlogKey, certlogTimestamp, writeCertlog } from "./certlog.js";
import { issueTemplateCertificate } from "./issue-template-certificate.js";

const template = (o: Partial<CertificateConfig> = {}): CertificateConfig => ({
  kind: "client",
  cn: "system:node:{{ .Instance.Hostname }}",
  organization: ["system:nodes"],
  dns: [],
  ip: [],
  uri: [],
  country: ["NZ"],
  province: [],
  locality: ["Wellington"],
  street: ["1 Example St"],
  postalCode: ["6011"],
  ttlHours: 2,
  ...o,
});
const data = { Instance: { Hostname: "node-1", IP4: "10.1.2.3", ID: "knd01" }, Vars: {} };

describe("issueTemplateCertificate", () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });

  it("renders the subject, uses clientAuth for client templates and the template TTL", async () => {
    const key = generateEd25519KeyPair();
    const now = new Date();
    const issued = await issueTemplateCertificate({
      ca: pki.ca,
      template: template(),
      templateName: "kubelet-client",
      data,
      publicKeyPem: key.publicKeyPem,
      now,
    });
    const cert = new X509Certificate(issued.certificatePem);
    assert.ok(cert.verify(new X509Certificate(pki.caCertPem).publicKey));
    assert.equal(
      cert.subject,
      "C=NZ\nL=Wellington\nstreet=1 Example St\npostalCode=6011\nO=system:nodes\nCN=system:node:node-1",
    );
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
    assert.equal(cert.subjectAltName, undefined);
    assert.equal(
      issued.expiresAt.getTime(),
      Math.floor((now.getTime() + 2 * 3_600_000) / 1000) * 1000,
    );
    assert.equal(issued.serial, cert.serialNumber.toLowerCase());
  });

  it("puts rendered DNS, IP and URI SANs on server certificates", async () => {
    const issued = await issueTemplateCertificate({
      ca: pki.ca,
      template: template({
        kind: "server",
        cn: undefined,
        dns: ["{{ .Instance.Hostname }}", ""],
        ip: ["{{ .Instance.IP4 }}"],
        uri: ["spiffe://cluster/{{ .Instance.ID }}"],
      }),
      templateName: "web",
      data,
      publicKeyPem: generateEd25519KeyPair().publicKeyPem,
    });
    const cert = new X509Certificate(issued.certificatePem);
    assert.equal(
      cert.subjectAltName,
      "DNS:node-1, IP Address:10.1.2.3, URI:spiffe://cluster/knd01",
    );
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
  });

  it("refuses an ip entry that does not render to an IP address", async () => {
    await assert.rejects(
      issueTemplateCertificate({
        ca: pki.ca,
        template: template({ ip: ["{{ .Instance.Hostname }}"] }),
        templateName: "web",
        data,
        publicKeyPem: generateEd25519KeyPair().publicKeyPem,
      }),
      (err: unknown) =>
        err instanceof NstanceError && /certificates\.web\.ip: "node-1"/.test(err.message),
    );
  });
});

describe("certlog", () => {
  it("writes one entry per batch under {prefix}certlog/{tenant}.{ts}.{instance}.json", async () => {
    const at = new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 67));
    assert.equal(certlogTimestamp(at), "20250102030405067");
    const storage = new MemoryStorage();
    const key = await writeCertlog(storage, "shard/s1/", {
      instanceId: "web01",
      tenant: "acme",
      issuedAt: at,
      certificates: [
        { certificateName: "web-server", filename: "web.crt", serial: "ab", expiresAt: at },
      ],
    });
    assert.equal(key, "shard/s1/certlog/acme.20250102030405067.web01.json");
    assert.equal(
      key,
      certlogKey("shard/s1/", { tenant: "acme", issuedAt: at, instanceId: "web01" }),
    );
    const body = JSON.parse((await storage.get(key))!.body.toString()) as Record<string, unknown>;
    assert.deepEqual(body, {
      instance_id: "web01",
      tenant: "acme",
      issued_at: at.toISOString(),
      batch_size: 1,
      certificates: [
        {
          certificate_name: "web-server",
          filename: "web.crt",
          serial_number: "ab",
          expires_at: at.toISOString(),
        },
      ],
    });
  });
});
