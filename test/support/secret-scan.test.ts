// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { formatFindings, type Secret, scanForSecrets, scanTextForSecrets } from "./secret-scan.js";

const keys = generateEd25519KeyPair();
/** Quote and newline (JSON escapes differ), and bytes whose base64 has `+` and `/` (base64url differs). */
const value = Buffer.concat([
  Buffer.from('tok"en\n'),
  Buffer.from([0xfb, 0xff, 0xbf, 1, 2, 3, 4, 5]),
]);
const SECRETS: Secret[] = [
  { name: "api token", value },
  { name: "agent key", value: keys.privateKeyPem },
  { name: "short", value: "abc" },
];
const JWT =
  "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJuc3RhbmNlLXNlcnZlciIsInN1YiI6IndlYiJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

describe("scanTextForSecrets", () => {
  const found = (text: string | Buffer) =>
    scanTextForSecrets(text, "t", SECRETS).map((f) => `${f.secret}/${f.encoding}`);

  it("finds a secret raw and in every encoding a log or record would use", () => {
    assert.deepEqual(found(Buffer.concat([Buffer.from("x"), value])), ["api token/raw"]);
    assert.deepEqual(found(JSON.stringify({ v: value.toString("utf8") })), [
      "api token/json-escaped",
    ]);
    assert.deepEqual(found(`a ${value.toString("base64")} b`), ["api token/base64"]);
    assert.deepEqual(found(value.toString("base64url")), ["api token/base64url"]);
    assert.deepEqual(found(`0x${value.toString("hex")}`), ["api token/hex"]);
  });

  it("finds a PEM key by its armour, its JSON-escaped form, and a bare body line", () => {
    assert.deepEqual(found(keys.privateKeyPem), [
      "agent key/raw",
      "agent key/pem-body-line",
      "PEM private key/pattern",
    ]);
    assert.ok(
      found(JSON.stringify({ key: keys.privateKeyPem })).includes("agent key/json-escaped"),
    );
    const body = keys.privateKeyPem.split("\n")[1]!;
    assert.deepEqual(found(`key=${body}`), ["agent key/pem-body-line"]);
  });

  it("finds JWTs and foreign private keys by pattern alone", () => {
    assert.deepEqual(found(`nonce ${JWT} used`), ["JWT (nonce)/pattern"]);
    const other = generateEd25519KeyPair().privateKeyPem;
    assert.deepEqual(found(other), ["PEM private key/pattern"]);
    assert.deepEqual(scanTextForSecrets(other, "t", [], { patterns: false }), []);
  });

  it("stays quiet on clean text, public keys, and too-short values", () => {
    assert.deepEqual(found(`${keys.publicKeyPem} abc abcabc`), []);
    assert.deepEqual(found("eyJhbGciOiJub25lIn0"), []);
  });
});

describe("scanForSecrets", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-secret-scan-"));
    await mkdir(join(dir, "bucket", "cluster"), { recursive: true });
    await writeFile(join(dir, "bucket", "cluster", "ca.crt"), keys.publicKeyPem);
    await writeFile(
      join(dir, "bucket", "record.json"),
      JSON.stringify({ token: value.toString("base64") }),
    );
    await writeFile(join(dir, "bucket", "blob"), Buffer.concat([Buffer.alloc(100, 1), value]));
    await writeFile(join(dir, "agent.log"), '{"msg":"Registered"}\n');
    await writeFile(join(dir, "other.txt"), JWT);
    await symlink(join(dir, "other.txt"), join(dir, "bucket", "link"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("walks directories (not following symlinks), filters files, and scans texts", async () => {
    const findings = await scanForSecrets(
      [
        { dir: join(dir, "bucket"), label: "bucket" },
        { dir, label: "logs", include: (p) => p.endsWith(".log") },
        { text: `server said ${JWT}`, name: "server log" },
      ],
      SECRETS,
    );
    assert.deepEqual(formatFindings(findings).split("\n"), [
      "api token in bucket/blob (raw, at byte 100)",
      "api token in bucket/record.json (base64, at byte 10)",
      "JWT (nonce) in server log (pattern, at byte 12)",
    ]);
    assert.ok(!formatFindings(findings).includes(value.toString("base64")), "no values shown");
  });

  it("takes a plain path as a directory, and reports a clean one as empty", async () => {
    assert.equal((await scanForSecrets(dir, SECRETS)).length, 3);
    assert.deepEqual(await scanForSecrets(join(dir, "bucket", "cluster"), SECRETS), []);
  });
});
