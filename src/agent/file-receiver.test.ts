// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import fc from "fast-check";
import { silentLogger } from "../shared/logger.js";
import { writeFileAtomic } from "./atomic-write.js";
import { type FilePatch, FileReceiver } from "./file-receiver.js";
import { fileStatuses, formatFileStatus } from "./file-statuses.js";
import { IdentityDir } from "./identity-dir.js";
import { checkReceivedFileContent } from "./received-file-validation.js";

const CERT = `-----BEGIN CERTIFICATE-----
MIIBRDCB96ADAgECAhQFI3AQebZWKQXEV9BQ53eCT0NFSzAFBgMrZXAwFzEVMBMG
A1UEAwwMbnN0YW5jZS10ZXN0MCAXDTI2MTEyMzA5MzU0OFoYDzIxMjYxMDMwMDkz
NTQ4WjAXMRUwEwYDVQQDDAxuc3RhbmNlLXRlc3QwKjAFBgMrZXADIQDbEuNNc2mA
z9ejbNmYC5zM6B4H3JYeTER/3NNfxGvyJaNTMFEwHQYDVR0OBBYEFGDOwrgNnLe9
wlEbm6MR2Stb76dVMB8GA1UdIwQYMBaAFGDOwrgNnLe9wlEbm6MR2Stb76dVMA8G
A1UdEwEB/wQFMAMBAf8wBQYDK2VwA0EAMd3gSqaIWrB34NTAyaF6JReY2Jx2nQ/t
3C2FhmY+TPTZeiWob7wgOXd9kW7NnpY19QYxcS5M2nQai9gqbFb9Dw==
-----END CERTIFICATE-----
`;
const pair = generateKeyPairSync("ed25519");
const KEY = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUB = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
const BROKEN_KEY = `-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIsecretsecret\n-----END PRIVATE KEY-----\n`;
const RSA_KEY = generateKeyPairSync("rsa", { modulusLength: 1024 })
  .privateKey.export({ type: "pkcs1", format: "pem" })
  .toString();

describe("checkReceivedFileContent", () => {
  const cases: Array<[string, string, RegExp | undefined]> = [
    ["ca.crt", CERT, undefined],
    ["bundle.crt", `# issuer: test\n${CERT}${CERT}`, undefined],
    ["ca.CRT", "not a cert", /no CERTIFICATE block/],
    ["ca.crt", CERT.replace("MIIBRDCB", "MIIBRDCC"), /does not parse/],
    ["ca.crt", `${CERT}${PUB}`, /block 2 is PUBLIC KEY/],
    ["ca.crt", CERT.replace("-----END CERTIFICATE-----", ""), /no matching END/],
    ["kubelet.key", KEY, undefined],
    ["legacy.key", RSA_KEY, undefined],
    ["kubelet.key", PUB, /want one PRIVATE KEY block, found 0/],
    ["kubelet.key", BROKEN_KEY, /does not parse/],
    ["kubelet.pub", PUB, undefined],
    ["kubelet.pub", KEY, /exactly one PUBLIC KEY block/],
    ["kubelet.pub", CERT, /exactly one PUBLIC KEY block/],
    ["a.json", '{"a":[1,2,{"b":null}]}', undefined],
    ["a.json", "", /invalid JSON/],
    ["a.json", "{'a':1}", /invalid JSON/],
    ["a.env", "# comment\n\nFOO=bar\n_x1=\nPATH=/a:/b=c\r\n", undefined],
    ["a.env", "FOO=bar\nnot a line\n", /line 2 is not KEY=value/],
    ["a.env", "1FOO=bar\n", /line 1 has an invalid variable name/],
    ["a.env", "FOO-BAR=x\n", /invalid variable name/],
    ["a.env", " FOO=x\n", /invalid variable name/],
    ["plain", "anything \u0000 goes", undefined],
    ["data.bin", "", undefined],
  ];
  for (const [name, content, want] of cases) {
    it(`${name}: ${want ? want.source : "valid"}`, () => {
      const got = checkReceivedFileContent(name, Buffer.from(content));
      if (want === undefined) assert.equal(got, undefined);
      else assert.match(got ?? "", want);
    });
  }
  it("never quotes key material in a reason", () => {
    const reason = checkReceivedFileContent("k.key", Buffer.from(BROKEN_KEY)) ?? "";
    assert.equal(reason, "invalid PEM private key: does not parse");
  });
  it("rejects invalid UTF-8 in typed files", () => {
    assert.match(
      checkReceivedFileContent("a.json", Buffer.from([0x7b, 0xff, 0x7d])) ?? "",
      /UTF-8/,
    );
  });
});

describe("FileReceiver", () => {
  let root = "";
  let recv = "";
  let identity: IdentityDir;
  let receiver: FileReceiver;
  let clock = 1_700_000_000_000;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "nstance-recv-"));
    recv = join(root, "recv");
    identity = new IdentityDir({ dir: join(root, "identity"), logger: silentLogger });
    await identity.ensure();
    receiver = new FileReceiver({
      recvDir: recv,
      identity,
      logger: silentLogger,
      now: () => clock,
    });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("writes a valid patch with restrictive modes, the hash and the completion stamp", async () => {
    const mtime = new Date("2024-01-01T00:00:00Z");
    const r = await receiver.apply({
      files: [
        { filename: "ca.crt", content: CERT, lastModified: mtime },
        { filename: "app.env", content: "A=1\n" },
        { filename: "cfg.json", content: Buffer.from("{}") },
        { filename: "empty.txt", content: "" },
      ],
      configHash: "sha256:abc",
    });
    assert.deepEqual(r, {
      applied: true,
      files: ["ca.crt", "app.env", "cfg.json", "empty.txt"],
      completedAtMs: clock,
    });
    assert.equal(await readFile(join(recv, "ca.crt"), "utf8"), CERT);
    assert.equal(await readFile(join(recv, "app.env"), "utf8"), "A=1\n");
    assert.equal((await stat(join(recv, "ca.crt"))).mode & 0o777, 0o640);
    assert.equal((await stat(join(recv, "ca.crt"))).mtime.getTime(), mtime.getTime());
    assert.equal(await identity.readConfigHash(), "sha256:abc");
    assert.equal((await stat(identity.configHashPath)).mode & 0o777, 0o600);
    assert.equal(await readFile(join(recv, "write-files.last"), "utf8"), String(clock));
    assert.deepEqual((await readdir(recv)).sort(), [
      "app.env",
      "ca.crt",
      "cfg.json",
      "empty.txt",
      "write-files.last",
    ]);
    assert.equal(receiver.lastPatchError, undefined);

    const statuses = await fileStatuses(recv);
    assert.deepEqual([...statuses.keys()].sort(), ["app.env", "ca.crt", "cfg.json", "empty.txt"]);
    assert.equal(formatFileStatus(statuses.get("ca.crt")!), "2024-01-01T00:00:00Z");
    assert.deepEqual(statuses.get("empty.txt"), { empty: true });
    assert.equal(formatFileStatus(statuses.get("empty.txt")!), "");
  });

  it("honours a configured file mode", async () => {
    const r2 = new FileReceiver({ recvDir: recv, identity, logger: silentLogger, fileMode: 0o600 });
    await r2.apply({ files: [{ filename: "x", content: "1" }], configHash: "h" });
    assert.equal((await stat(join(recv, "x"))).mode & 0o777, 0o600);
  });

  it("rejects a patch with one invalid file whole, and reports why", async () => {
    await receiver.apply({ files: [{ filename: "keep.json", content: "[1]" }], configHash: "h1" });
    clock += 1000;
    const r = await receiver.apply({
      files: [
        { filename: "keep.json", content: "[2]" },
        { filename: "new.env", content: "OK=1\n" },
        { filename: "bad.crt", content: "garbage" },
      ],
      configHash: "h2",
    });
    assert.equal(r.applied, false);
    if (r.applied) return;
    assert.deepEqual([...r.errors.keys()], ["bad.crt"]);
    assert.match(r.reason, /^patch rejected: "bad.crt": invalid PEM certificate/);
    assert.equal(receiver.lastPatchError, r.reason);
    assert.equal(await readFile(join(recv, "keep.json"), "utf8"), "[1]");
    await assert.rejects(readFile(join(recv, "new.env")), { code: "ENOENT" });
    await assert.rejects(readFile(join(recv, "bad.crt")), { code: "ENOENT" });
    assert.equal(await identity.readConfigHash(), "h1");
    assert.equal(await readFile(join(recv, "write-files.last"), "utf8"), String(clock - 1000));
    assert.match(
      await readFile(join(recv, "errors", "bad.crt"), "utf8"),
      /invalid PEM certificate/,
    );

    const statuses = await fileStatuses(recv);
    assert.match(formatFileStatus(statuses.get("bad.crt")!), /^error: invalid PEM certificate/);
    assert.ok("lastModified" in statuses.get("keep.json")!);

    // A later good version clears the error file and the patch error.
    const ok = await receiver.apply({
      files: [{ filename: "bad.crt", content: CERT }],
      configHash: "h3",
    });
    assert.equal(ok.applied, true);
    await assert.rejects(readFile(join(recv, "errors", "bad.crt")), { code: "ENOENT" });
    assert.ok("lastModified" in (await fileStatuses(recv)).get("bad.crt")!);
    assert.equal(receiver.lastPatchError, undefined);
  });

  const badNames = [
    "../x",
    "/etc/passwd",
    "a/b",
    ".hidden",
    "..",
    ".",
    "",
    "write-files.last",
    "errors",
    "a\\b",
    "nul\u0000byte",
    "tab\tname",
    "x".repeat(256),
    "\uD800lone",
    " padded",
  ];
  for (const name of badNames) {
    it(`refuses the file name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 10)}…` : name)}`, async () => {
      const r = await receiver.apply({
        files: [
          { filename: "good.txt", content: "g" },
          { filename: name, content: "x" },
        ],
        configHash: "h",
      });
      assert.equal(r.applied, false);
      await assert.rejects(readdir(recv), { code: "ENOENT" }, "nothing written, not even recv");
    });
  }

  it("accepts unicode and 255-byte names", async () => {
    const long = `${"é".repeat(126)}.t`;
    assert.equal(Buffer.byteLength(long), 254);
    const r = await receiver.apply({
      files: [
        { filename: "zertifikat-für-ñ.txt", content: "u" },
        { filename: long, content: "l" },
        { filename: "__proto__", content: "p" },
      ],
      configHash: "h",
    });
    assert.equal(r.applied, true);
    const statuses = await fileStatuses(recv);
    assert.ok(statuses.has("zertifikat-für-ñ.txt"));
    assert.ok(statuses.has(long));
    assert.ok(statuses.has("__proto__"));
  });

  it("rejects duplicate names, an empty hash and a directory in the way", async () => {
    const dup = await receiver.apply({
      files: [
        { filename: "a", content: "1" },
        { filename: "a", content: "2" },
      ],
      configHash: "h",
    });
    assert.equal(dup.applied, false);
    const noHash = await receiver.apply({
      files: [{ filename: "a", content: "1" }],
      configHash: "",
    });
    assert.equal(noHash.applied, false);
    await mkdir(join(recv, "dir"), { recursive: true });
    const dir = await receiver.apply({
      files: [{ filename: "dir", content: "1" }],
      configHash: "h",
    });
    assert.equal(dir.applied, false);
    if (!dir.applied) assert.match(dir.errors.get("dir") ?? "", /directory/);
    assert.deepEqual(await readdir(recv), ["dir"]);
  });

  it("leaves nothing behind when aborted before the commit point", async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      receiver.apply({ files: [{ filename: "a", content: "1" }], configHash: "h" }, ac.signal),
    );
    await assert.rejects(readdir(recv), { code: "ENOENT" });
  });

  it("recovers from a crash: uncommitted stages vanish, committed ones roll forward", async () => {
    await mkdir(recv, { recursive: true });
    // Simulate a crash mid-staging: a stage without a commit journal, and a stray temp file.
    const torn = join(recv, ".patch-torn01");
    await mkdir(torn);
    await writeFile(join(torn, "half.crt"), "-----BEGIN CERT");
    await writeFile(join(recv, ".x.json.0123456789ab.tmp"), "{");
    // Simulate a crash after the commit point, with one of two files already renamed into place.
    const done = join(recv, ".patch-done01");
    await mkdir(done);
    await writeFile(join(done, "b.txt"), "B");
    await writeFile(join(recv, "a.txt"), "A");
    await writeFileAtomic(
      join(done, ".commit"),
      JSON.stringify({ config_hash: "sha256:rolled", files: ["a.txt", "b.txt"] }),
      { mode: 0o600 },
    );
    await mkdir(join(recv, "errors"));
    await writeFile(join(recv, "errors", "b.txt"), "old error");

    await receiver.recover();
    assert.deepEqual((await readdir(recv)).sort(), [
      "a.txt",
      "b.txt",
      "errors",
      "write-files.last",
    ]);
    assert.equal(await readFile(join(recv, "b.txt"), "utf8"), "B");
    assert.equal(await identity.readConfigHash(), "sha256:rolled");
    assert.deepEqual(await readdir(join(recv, "errors")), []);
  });

  it("applies concurrent patches one at a time", async () => {
    const patches: FilePatch[] = Array.from({ length: 8 }, (_, i) => ({
      files: [
        { filename: "shared.txt", content: `v${i}` },
        { filename: `own-${i}.txt`, content: `${i}` },
      ],
      configHash: `h${i}`,
    }));
    const results = await Promise.all(patches.map((p) => receiver.apply(p)));
    assert.ok(results.every((r) => r.applied));
    assert.equal(await readFile(join(recv, "shared.txt"), "utf8"), "v7");
    assert.equal(await identity.readConfigHash(), "h7");
    assert.equal((await readdir(recv)).filter((n) => n.startsWith(".")).length, 0);
  });
});

describe("FileReceiver properties", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  /** Every file under `dir`, relative to it. */
  async function walk(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
    }
    return out.sort();
  }

  const nasty = fc.constantFrom(
    "../x",
    "../../etc/passwd",
    "/etc/passwd",
    "a/b",
    ".hidden",
    "..",
    "errors",
    "write-files.last",
    "x".repeat(300),
    "\u00e9\u0301\ud83d\ude00",
    "a\u0000b",
    "..\\x",
    "ok.txt",
    "ok.json",
  );
  const name = fc.oneof(
    nasty,
    fc.string({ unit: "binary", minLength: 0, maxLength: 40 }),
    fc.string({ maxLength: 12 }),
  );
  const file = fc.record({
    filename: name,
    content: fc.oneof(fc.string(), fc.constant(CERT), fc.constant("{}")),
  });

  it("never writes outside the recv dir, and a patch with an invalid file writes nothing", async () => {
    const outcomes = { applied: 0, rejected: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(file, { minLength: 1, maxLength: 6 }), async (files) => {
        const root = await mkdtemp(join(tmpdir(), "nstance-recv-prop-"));
        dirs.push(root);
        const recv = join(root, "sandbox", "recv");
        await mkdir(recv, { recursive: true });
        const identity = new IdentityDir({
          dir: join(root, "sandbox", "identity"),
          logger: silentLogger,
        });
        await identity.ensure();
        const receiver = new FileReceiver({
          recvDir: recv,
          identity,
          logger: silentLogger,
          now: () => 42,
        });
        const r = await receiver.apply({ files, configHash: "sha256:p" });
        outcomes[r.applied ? "applied" : "rejected"]++;

        const all = await walk(root);
        const outside = all.filter(
          (p) => !p.startsWith(`sandbox${"/"}recv/`) && p !== "sandbox/identity/config.hash",
        );
        assert.deepEqual(outside, [], "nothing outside recv except config.hash");
        if (r.applied) {
          assert.equal(await identity.readConfigHash(), "sha256:p");
          for (const f of files) {
            assert.equal(await readFile(join(recv, f.filename), "utf8"), f.content);
          }
        } else {
          // Only error files may exist, one per content-invalid (writable) name.
          const written = all.filter((p) => !p.startsWith("sandbox/recv/errors/"));
          assert.deepEqual(written, [], "a rejected patch writes nothing but error files");
          assert.equal(await identity.readConfigHash(), undefined);
          for (const p of all) {
            const n = p.slice("sandbox/recv/errors/".length);
            assert.ok(r.errors.has(n), `error file ${n} belongs to a rejected file`);
          }
        }
        await rm(root, { recursive: true, force: true });
      }),
      { numRuns: 100 },
    );
    // Both branches must have been exercised for the property to mean anything.
    assert.ok(outcomes.applied > 0 && outcomes.rejected > 0, JSON.stringify(outcomes));
  });
});
