// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { generateEd25519KeyPair } from "../../pki/ed25519-keys.js";
import { issueClientCertificate } from "../../pki/issue-certificate.js";
import { createTestPki, issueTestClientCertificate, type TestPki } from "../../pki/testing.js";
import { newOperatorId } from "./operator-id.js";
import { loadOperatorIdentity, writeOperatorIdentity } from "./operator-identity.js";

describe("operator identity dir", () => {
  let pki: TestPki;
  let tmp: string;

  before(async () => {
    pki = await createTestPki("c1");
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-identity-"));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("writes 0600 files in a 0700 dir and loads them back with the certificate's identity", async () => {
    const dir = join(tmp, "ok", "nested");
    const op = await issueTestClientCertificate(pki.ca, {
      clientId: "op1",
      tenant: "acme",
      role: "operator",
    });
    await writeOperatorIdentity(dir, { caCertPem: pki.caCertPem, ...op });
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, "identity.key"))).mode & 0o777, 0o600);
    const loaded = await loadOperatorIdentity(dir);
    assert.equal(loaded.client.clientId, "op1");
    assert.equal(loaded.client.tenant, "acme");
    assert.equal(loaded.keyPem, op.keyPem);
    await assert.rejects(
      writeOperatorIdentity(dir, { caCertPem: pki.caCertPem, ...op }),
      /already exists; pass --force/,
    );
  });

  it("refuses an agent certificate", async () => {
    const dir = join(tmp, "agent");
    const agent = await issueTestClientCertificate(pki.ca, { clientId: "i-1", role: "agent" });
    await writeOperatorIdentity(dir, { caCertPem: pki.caCertPem, ...agent });
    await assert.rejects(loadOperatorIdentity(dir), /has role "agent", not "operator"/);
  });

  it("refuses a key that does not belong to the certificate", async () => {
    const dir = join(tmp, "mismatch");
    const op = await issueTestClientCertificate(pki.ca, { clientId: "op1", role: "operator" });
    await writeOperatorIdentity(dir, {
      caCertPem: pki.caCertPem,
      certPem: op.certPem,
      keyPem: generateEd25519KeyPair().privateKeyPem,
    });
    await assert.rejects(
      loadOperatorIdentity(dir),
      /identity\.crt does not belong to .*identity\.key/,
    );
  });

  it("refuses an expired certificate, saying to register again", async () => {
    const dir = join(tmp, "expired");
    const keys = generateEd25519KeyPair();
    const issued = await issueClientCertificate({
      ca: pki.ca,
      publicKeyPem: keys.publicKeyPem,
      clientId: "op1",
      tenant: "default",
      role: "operator",
      ttlMs: 60_000,
      now: new Date(Date.now() - 3_600_000),
    });
    await writeOperatorIdentity(dir, {
      caCertPem: pki.caCertPem,
      certPem: issued.certificatePem,
      keyPem: keys.privateKeyPem,
    });
    await assert.rejects(loadOperatorIdentity(dir), /expired at .*; register the operator again/);
  });

  it("refuses a certificate file that is not a certificate", async () => {
    const dir = join(tmp, "garbage");
    const op = await issueTestClientCertificate(pki.ca, { clientId: "op1", role: "operator" });
    await writeOperatorIdentity(dir, { caCertPem: pki.caCertPem, ...op });
    await writeFile(join(dir, "identity.crt"), "not a certificate");
    await assert.rejects(loadOperatorIdentity(dir), /is not an nstance client certificate/);
  });
});

describe("newOperatorId", () => {
  it("is opr + 26 Crockford characters, sortable by creation time", () => {
    const a = newOperatorId(new Date("2025-01-01T00:00:00Z"));
    const b = newOperatorId(new Date("2025-01-01T00:00:01Z"));
    assert.match(a, /^opr[0-9a-hjkmnp-tv-z]{26}$/);
    assert.ok(a < b, `${a} < ${b}`);
    assert.notEqual(newOperatorId(), newOperatorId());
  });
});
