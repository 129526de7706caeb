// SPDX-License-Identifier: Apache-2.0
// `nstance-admin secret put|list|delete` against a real nstance-server process: values come from
// a file or stdin (a real admin process reads its real stdin), are stored encrypted and byte for
// byte, and never appear in the admin's output or the server's logs; `--value` is refused.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ObjectStorageSecretsStore } from "../../src/server/secrets/secrets-store.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FileStorage } from "../../src/storage/file-storage.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { FLEET_SHARD, LocalFleet } from "./local-fleet.js";

const BIN = fileURLToPath(new URL("../../bin/nstance-admin.js", import.meta.url));

describe("nstance-admin secret commands against a real server", { concurrency: false }, () => {
  let dir = "";
  let fleet: LocalFleet;
  let store: ObjectStorageSecretsStore;
  /** Text that must never show up anywhere but in the stored secret. */
  const marker = `tok-${randomBytes(12).toString("hex")}`;
  const value = Buffer.concat([Buffer.from(`${marker}\n`), randomBytes(32)]);

  const serverOutput = () =>
    JSON.stringify(fleet.server.proc.logs) + fleet.server.proc.stderr.join("");

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-e2e-secrets-"));
    fleet = await LocalFleet.start({ dir, edits: [[["groups", "default", "web", "size"], 0]] });
    store = new ObjectStorageSecretsStore({
      storage: new FileStorage({ dir: fleet.bucket, fsync: false }),
      encryptionKey: Buffer.from(TEST_ENCRYPTION_KEY, "base64"),
      logger: silentLogger,
    });
  });
  after(async () => {
    await fleet?.stop();
  });

  it("put --value-file stores the value encrypted and byte for byte, and prints only name and size", async (t) => {
    const file = join(dir, "db-password.bin");
    await writeFile(file, value, { mode: 0o600 });
    const r = await fleet.shardAdmin("secret", "put", "db-password", "--value-file", file);
    t.diagnostic(`secret put →\n${r.out}${r.err}`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^SHARD\s+SECRET\s+SIZE\s+RESULT\nlocal\s+db-password\s+61\s+stored\n$/);
    assert.ok(!(r.out + r.err).includes(marker));

    const raw = await readFile(join(fleet.bucket, "cluster", "secret", "db-password"));
    assert.ok(!raw.includes(marker), "the stored object is encrypted");
    assert.deepEqual(await store.get("db-password"), value);

    const json = await fleet.shardAdmin(
      "secret",
      "put",
      "db-password",
      "--value-file",
      file,
      "--json",
    );
    assert.equal(json.code, 0, json.err);
    assert.deepEqual(JSON.parse(json.out), {
      results: [
        {
          shard: FLEET_SHARD,
          address: `localhost:${fleet.server.ports.operator}`,
          ok: true,
          secret: { name: "db-password", size: value.length, stored: true },
        },
      ],
    });
    assert.ok(!serverOutput().includes(marker), "the server never logs the value");
  });

  it("a real admin process reads the value from stdin with --value-file -", async () => {
    const text = `${marker}-stdin\n`;
    const r = spawnSync(
      process.execPath,
      [
        BIN,
        "secret",
        "put",
        "api-token",
        "--value-file",
        "-",
        "--servers",
        `${FLEET_SHARD}=localhost:${fleet.server.ports.operator}`,
        "--identity-dir",
        fleet.identityDir,
      ],
      { input: text, encoding: "utf8", env: { PATH: process.env.PATH ?? "" }, timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /local\s+api-token\s+\d+\s+stored/);
    assert.ok(!(r.stdout + r.stderr).includes(marker));
    const stored = await store.get("api-token");
    assert.equal(stored?.toString("utf8"), text, "kept exactly, final newline included");
  });

  it("refuses --value, a missing, empty or unreadable value with exit 2, never echoing it", async () => {
    const empty = join(dir, "empty");
    await writeFile(empty, "");
    const cases: Array<[string[], RegExp]> = [
      [["--value", `${marker}-argv`], /--value is not supported/],
      [[], /give the value with --value-file/],
      [["--value-file", empty], /the value is empty/],
      [["--value-file", join(dir, "missing")], /--value-file .*missing.*ENOENT/],
      [["--value-file", "-"], /no standard input/],
    ];
    for (const [flags, want] of cases) {
      const r = await fleet.shardAdmin("secret", "put", "refused", ...flags);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.err}`);
      assert.match(r.err, want);
      assert.ok(!(r.out + r.err).includes(marker), "the refused value is not echoed");
    }
    assert.equal(await store.get("refused"), undefined);
  });

  it("lists names only, deletes (idempotently), and refuses bad or reserved names", async (t) => {
    let r = await fleet.shardAdmin("secret", "list");
    t.diagnostic(`secret list →\n${r.out}`);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "SHARD  SECRET\nlocal  api-token\nlocal  db-password\n");
    r = await fleet.shardAdmin("secret", "list", "--json");
    const listed = JSON.parse(r.out) as { results: Array<{ secrets: Array<{ name: string }> }> };
    // The cluster's own keys live beside them in storage but are never listed.
    assert.deepEqual(
      listed.results[0]?.secrets.map((s) => s.name),
      ["api-token", "db-password"],
    );

    r = await fleet.shardAdmin("secret", "delete", "db-password");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /local\s+db-password\s+deleted/);
    assert.equal(await store.get("db-password"), undefined);
    r = await fleet.shardAdmin("secret", "delete", "db-password");
    assert.equal(r.code, 0, `deleting a missing secret succeeds: ${r.err}`);
    r = await fleet.shardAdmin("secret", "list");
    assert.equal(r.out, "SHARD  SECRET\nlocal  api-token\n");

    const file = join(dir, "v");
    await writeFile(file, "x");
    r = await fleet.shardAdmin("secret", "put", ".hidden", "--value-file", file);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /error: shard local: .*secret name/);
    r = await fleet.shardAdmin("secret", "put", "ca.key", "--value-file", file);
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /reserved/);
    r = await fleet.shardAdmin("secret", "delete", "registration-nonce.key");
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /reserved/);
  });
});
