// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { LogAttrs, Logger } from "../shared/logger.js";
import { KeyStore } from "./key-store.js";

/** Records every log line so tests can check no key material is logged. */
function recordingLogger(lines: string[]): Logger {
  const log = (msg: string, attrs?: LogAttrs): void => {
    lines.push(`${msg} ${JSON.stringify(attrs ?? {})}`);
  };
  const l: Logger = { debug: log, info: log, warn: log, error: log, child: () => l };
  return l;
}

describe("KeyStore", () => {
  let root = "";
  let lines: string[] = [];
  let store: KeyStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "nstance-keys-"));
    lines = [];
    store = new KeyStore({
      keysDir: join(root, "keys"),
      identityDir: join(root, "identity"),
      logger: recordingLogger(lines),
    });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("generates an Ed25519 pair, writes the private key 0640, returns the SPKI public key", async () => {
    const k = await store.ensureKey("kubelet.server");
    assert.equal(k.name, "kubelet.server");
    assert.equal(k.created, true);
    assert.match(k.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);
    const keyPath = join(root, "keys", "kubelet.server.key");
    const pem = await readFile(keyPath, "utf8");
    assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal((await stat(keyPath)).mode & 0o777, 0o640);
    assert.equal(await readFile(join(root, "keys", "kubelet.server.pub"), "utf8"), k.publicKeyPem);
    // The files really are a pair.
    const msg = Buffer.from("hello");
    const sig = sign(null, msg, createPrivateKey(pem));
    assert.ok(verify(null, msg, createPublicKey(k.publicKeyPem), sig));
    assert.equal(createPublicKey(k.publicKeyPem).asymmetricKeyType, "ed25519");
    // Nothing secret or even public-key-ish was logged.
    assert.ok(lines.length > 0);
    for (const line of lines) assert.ok(!line.includes("BEGIN"), line);
  });

  it("reuses an existing key so a repeated request gives the same public key", async () => {
    const a = await store.ensureKey("etcd");
    const b = await store.ensureKey("etcd");
    assert.equal(b.created, false);
    assert.equal(b.publicKeyPem, a.publicKeyPem);
    const [c, d] = await Promise.all([store.ensureKey("x"), store.ensureKey("x")]);
    assert.equal(c!.publicKeyPem, d!.publicKeyPem);
    assert.deepEqual(
      (await store.ensureKeys(["etcd", "y"])).map((k) => k.created),
      [false, true],
    );
  });

  it("replaces a damaged key", async () => {
    const a = await store.ensureKey("k");
    await writeFile(join(root, "keys", "k.key"), "garbage");
    const b = await store.ensureKey("k");
    assert.equal(b.created, true);
    assert.notEqual(b.publicKeyPem, a.publicKeyPem);
  });

  it("honours a configured mode", async () => {
    const s = new KeyStore({
      keysDir: join(root, "keys"),
      identityDir: join(root, "identity"),
      keyFileMode: 0o600,
      logger: recordingLogger(lines),
    });
    await s.ensureKey("m");
    assert.equal((await stat(join(root, "keys", "m.key"))).mode & 0o777, 0o600);
  });

  for (const bad of ["../evil", "/abs", "a/b", ".hidden", "", "x\u0000y"]) {
    it(`refuses the key name ${JSON.stringify(bad)}`, async () => {
      await assert.rejects(store.ensureKey(bad), /invalid key name/);
      await assert.rejects(readdir(join(root, "keys")), { code: "ENOENT" });
    });
  }

  it("creates the identity key once (0600) and reuses it", async () => {
    const a = await store.ensureIdentityKey();
    assert.equal(a.created, true);
    const path = join(root, "identity", "identity.key");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await readFile(path, "utf8"), a.privateKeyPem);
    const b = await store.ensureIdentityKey();
    assert.equal(b.created, false);
    assert.equal(b.publicKeyPem, a.publicKeyPem);

    // A second store (another process) racing on a fresh directory still ends with one key.
    const dir2 = join(root, "identity2");
    const s1 = new KeyStore({
      keysDir: join(root, "k1"),
      identityDir: dir2,
      logger: recordingLogger(lines),
    });
    const s2 = new KeyStore({
      keysDir: join(root, "k2"),
      identityDir: dir2,
      logger: recordingLogger(lines),
    });
    const [x, y] = await Promise.all([s1.ensureIdentityKey(), s2.ensureIdentityKey()]);
    assert.equal(x.publicKeyPem, y.publicKeyPem);
    assert.equal([x.created, y.created].filter(Boolean).length, 1);
    for (const line of lines) assert.ok(!line.includes("PRIVATE"), line);
  });

  it("refuses to replace a damaged identity key silently", async () => {
    await store.ensureIdentityKey();
    await writeFile(join(root, "identity", "identity.key"), "garbage");
    await assert.rejects(store.ensureIdentityKey(), /is not a PEM private key/);
  });
});
