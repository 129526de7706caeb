// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import { silentLogger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import { MemoryStorage } from "../storage/memory-storage.js";
import type { ObjectStorage, PutOptions } from "../storage/object-storage.js";
import { createCertificateAuthority } from "./ca.js";
import { ensureClusterIdentity } from "./cluster-identity.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import { SecretBox } from "./secret-box.js";

const CERT = "cluster/ca.crt";
const KEY = "cluster/secret/ca.key";
const NONCE = "cluster/secret/registration-nonce.key";

/** Adds a random 0–5 ms delay before every operation, so concurrent callers interleave. */
function jittery(inner: ObjectStorage): ObjectStorage {
  const pause = () => sleep(Math.random() * 5);
  return {
    description: inner.description,
    async get(k, s) {
      await pause();
      return inner.get(k, s);
    },
    async head(k, s) {
      await pause();
      return inner.head(k, s);
    },
    async put(k, b, o?: PutOptions) {
      await pause();
      return inner.put(k, b, o);
    },
    async delete(k, s) {
      await pause();
      return inner.delete(k, s);
    },
    async list(p, s) {
      await pause();
      return inner.list(p, s);
    },
  };
}

const isInconsistent = (pattern: RegExp) => (err: unknown) =>
  err instanceof NstanceError &&
  err.code === "precondition_failed" &&
  /inconsistent CA state/.test(err.message) &&
  pattern.test(err.message);

describe("ensureClusterIdentity", () => {
  const encryptionKey = randomBytes(32);
  const base = { clusterId: "c1", encryptionKey, logger: silentLogger };

  it("creates the CA and nonce key on first boot, encrypted at rest", async () => {
    const storage = new MemoryStorage();
    const id = await ensureClusterIdentity({ ...base, storage });
    const cert = await storage.get(CERT);
    assert.equal(cert?.body.toString(), id.ca.certPem);
    assert.match(id.ca.cert.subject, /O=Nstance Cluster c1/);
    const box = new SecretBox({ key: encryptionKey });
    for (const k of [KEY, NONCE]) {
      const blob = (await storage.get(k))!.body;
      assert.ok(!blob.toString("latin1").includes("PRIVATE KEY"), `${k} is not plaintext`);
      assert.match(box.decrypt(blob).toString(), /^-----BEGIN PRIVATE KEY-----/);
    }
    assert.equal(id.nonceSigningKey.asymmetricKeyType, "ed25519");
    assert.equal(id.nonceVerifyKey.type, "public");
  });

  it("reuses the stored identity byte for byte on restart", async () => {
    const storage = new MemoryStorage();
    const first = await ensureClusterIdentity({ ...base, storage });
    const before = await Promise.all([CERT, KEY, NONCE].map((k) => storage.get(k)));
    const second = await ensureClusterIdentity({ ...base, storage });
    const after = await Promise.all([CERT, KEY, NONCE].map((k) => storage.get(k)));
    assert.equal(second.ca.certPem, first.ca.certPem);
    assert.deepEqual(
      after.map((o) => o?.etag),
      before.map((o) => o?.etag),
    );
    const pem = (k: typeof first) => k.nonceSigningKey.export({ type: "pkcs8", format: "pem" });
    assert.equal(pem(second), pem(first));
  });

  it("10 concurrent boots agree on one CA and one nonce key", async () => {
    const storage = jittery(new MemoryStorage());
    const ids = await Promise.all(
      Array.from({ length: 10 }, () => ensureClusterIdentity({ ...base, storage })),
    );
    const stored = (await storage.get(CERT))!.body.toString();
    for (const id of ids) {
      assert.equal(id.ca.certPem, stored);
      assert.deepEqual(
        id.nonceVerifyKey.export({ type: "spki", format: "der" }),
        ids[0]!.nonceVerifyKey.export({ type: "spki", format: "der" }),
      );
    }
  });

  it("refuses a certificate without its key", async () => {
    const storage = new MemoryStorage();
    await storage.put(CERT, (await createCertificateAuthority({ clusterId: "c1" })).certPem);
    await assert.rejects(
      ensureClusterIdentity({ ...base, storage }),
      isInconsistent(/ca\.crt exists but cluster\/secret\/ca\.key is missing/),
    );
    assert.equal(await storage.get(KEY), undefined, "nothing was created");
  });

  it("waits for a certificate being written, then reports a key without certificate", async () => {
    const storage = new MemoryStorage();
    const ca = await createCertificateAuthority({ clusterId: "c1" });
    await storage.put(KEY, new SecretBox({ key: encryptionKey }).encrypt(ca.keyPem));
    const started = Date.now();
    await assert.rejects(
      ensureClusterIdentity({ ...base, storage, caSettleTimeoutMs: 300 }),
      isInconsistent(/secret\/ca\.key exists but cluster\/ca\.crt is missing/),
    );
    assert.ok(Date.now() - started >= 300, "waited for the settle timeout");
    // A creator that finishes within the settle time is waited for, not reported.
    const pending = ensureClusterIdentity({ ...base, storage, caSettleTimeoutMs: 10_000 });
    await sleep(150);
    await storage.put(CERT, ca.certPem);
    assert.equal((await pending).ca.certPem, ca.certPem);
  });

  it("refuses a key that does not match the certificate", async () => {
    const storage = new MemoryStorage();
    await storage.put(CERT, (await createCertificateAuthority({ clusterId: "c1" })).certPem);
    const box = new SecretBox({ key: encryptionKey });
    await storage.put(KEY, box.encrypt(generateEd25519KeyPair().privateKeyPem));
    await assert.rejects(
      ensureClusterIdentity({ ...base, storage }),
      isInconsistent(/does not match/),
    );
  });

  it("fails clearly under the wrong encryption key, and decrypts with a rotated-out key", async () => {
    const storage = new MemoryStorage();
    const first = await ensureClusterIdentity({ ...base, storage });
    await assert.rejects(
      ensureClusterIdentity({ ...base, storage, encryptionKey: randomBytes(32) }),
      /cannot decrypt cluster\/secret\/(ca|registration-nonce)\.key/,
    );
    const rotated = await ensureClusterIdentity({
      ...base,
      storage,
      encryptionKey: randomBytes(32),
      decryptOnlyKeys: [encryptionKey],
    });
    assert.equal(rotated.ca.certPem, first.ca.certPem);
  });

  it("stores plaintext without an encryption key, and refuses encrypted objects then", async () => {
    const plain = new MemoryStorage();
    await ensureClusterIdentity({ ...base, storage: plain, encryptionKey: undefined });
    assert.match((await plain.get(KEY))!.body.toString(), /^-----BEGIN PRIVATE KEY-----/);
    const encrypted = new MemoryStorage();
    await ensureClusterIdentity({ ...base, storage: encrypted });
    await assert.rejects(
      ensureClusterIdentity({ ...base, storage: encrypted, encryptionKey: undefined }),
      /is encrypted but no encryption key is configured/,
    );
  });
});
