// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { createDecipheriv, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import { loadEncryptionKey, SecretBox } from "./secret-box.js";

describe("SecretBox", () => {
  const key = randomBytes(32);

  it("writes nonce ‖ ciphertext ‖ tag that plain AES-256-GCM opens", () => {
    const blob = new SecretBox({ key }).encrypt("hello secret");
    assert.equal(blob.length, 12 + "hello secret".length + 16);
    const d = createDecipheriv("aes-256-gcm", key, blob.subarray(0, 12));
    d.setAuthTag(blob.subarray(blob.length - 16));
    const plain = Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
    assert.equal(plain.toString(), "hello secret");
  });

  it("round-trips and uses a fresh nonce each time", () => {
    const box = new SecretBox({ key });
    const a = box.encrypt(Buffer.from("x"));
    const b = box.encrypt(Buffer.from("x"));
    assert.notDeepEqual(a.subarray(0, 12), b.subarray(0, 12));
    assert.equal(box.decrypt(a).toString(), "x");
    assert.equal(box.decrypt(Buffer.from(box.encrypt(Buffer.alloc(0)))).length, 0);
  });

  it("detects tampering and wrong keys", () => {
    const blob = new SecretBox({ key }).encrypt("secret");
    blob[14]! ^= 1;
    assert.throws(() => new SecretBox({ key }).decrypt(blob), /none of the 1 configured/);
    const good = new SecretBox({ key }).encrypt("secret");
    assert.throws(
      () => new SecretBox({ key: randomBytes(32) }).decrypt(good),
      (err: unknown) => err instanceof NstanceError && err.code === "internal",
    );
    assert.throws(() => new SecretBox({ key }).decrypt(Buffer.alloc(27)), /truncated \(27 bytes\)/);
  });

  it("decrypts with a decrypt-only old key but encrypts with the new one", () => {
    const oldKey = randomBytes(32);
    const oldBlob = new SecretBox({ key: oldKey }).encrypt("v1");
    const rotated = new SecretBox({ key, decryptOnlyKeys: [oldKey] });
    assert.equal(rotated.decrypt(oldBlob).toString(), "v1");
    const newBlob = rotated.encrypt("v2");
    assert.equal(new SecretBox({ key }).decrypt(newBlob).toString(), "v2");
    assert.throws(() => new SecretBox({ key: oldKey }).decrypt(newBlob));
  });

  it("refuses keys that are not 32 bytes, saying the length", () => {
    assert.throws(() => new SecretBox({ key: randomBytes(16) }), /exactly 32 bytes, got 16/);
    assert.throws(
      () => new SecretBox({ key, decryptOnlyKeys: [randomBytes(31)] }),
      /decrypt-only encryption key must be exactly 32 bytes, got 31/,
    );
  });
});

describe("loadEncryptionKey", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-key-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads raw, hex and base64 keys from the environment", async () => {
    const raw = "0123456789abcdef0123456789abcdef";
    const bytes = randomBytes(32);
    const k1 = await loadEncryptionKey({ provider: "env", source: "K" }, { K: raw });
    assert.equal(k1.toString(), raw);
    const k2 = await loadEncryptionKey(
      { provider: "env", source: "K" },
      { K: bytes.toString("hex") },
    );
    assert.deepEqual(k2, bytes);
    const k3 = await loadEncryptionKey(
      { provider: "env", source: "K" },
      { K: bytes.toString("base64") },
    );
    assert.deepEqual(k3, bytes);
  });

  it("names a missing variable and states a wrong length", async () => {
    await assert.rejects(
      loadEncryptionKey({ provider: "env", source: "NSTANCE_ENCRYPTION_KEY" }, {}),
      (err: unknown) =>
        err instanceof NstanceError &&
        err.code === "invalid_argument" &&
        /environment variable NSTANCE_ENCRYPTION_KEY is not set/.test(err.message),
    );
    await assert.rejects(
      loadEncryptionKey({ provider: "env", source: "K" }, { K: "short-secret-value" }),
      (err: unknown) =>
        err instanceof NstanceError &&
        /got 18 bytes/.test(err.message) &&
        !err.message.includes("short-secret-value"),
    );
  });

  it("reads a raw binary key file, and trims a text key file", async () => {
    const bytes = randomBytes(32);
    const bin = join(dir, "bin.key");
    await writeFile(bin, bytes);
    assert.deepEqual(await loadEncryptionKey({ provider: "file", source: bin }, {}), bytes);
    const text = join(dir, "text.key");
    await writeFile(text, "0123456789abcdef0123456789abcdef\n");
    assert.equal(
      (await loadEncryptionKey({ provider: "file", source: text }, {})).toString(),
      "0123456789abcdef0123456789abcdef",
    );
    const hex = join(dir, "hex.key");
    await writeFile(hex, `${bytes.toString("hex")}\n`);
    assert.deepEqual(await loadEncryptionKey({ provider: "file", source: hex }, {}), bytes);
  });

  it("reports an unreadable file and a wrong-length file", async () => {
    const missing = join(dir, "missing.key");
    await assert.rejects(
      loadEncryptionKey({ provider: "file", source: missing }, {}),
      new RegExp(`cannot read encryption key file ${missing}: ENOENT`),
    );
    const short = join(dir, "short.key");
    await writeFile(short, Buffer.alloc(20, 0xab));
    await assert.rejects(
      loadEncryptionKey({ provider: "file", source: short }, {}),
      /got 20 bytes/,
    );
  });
});
