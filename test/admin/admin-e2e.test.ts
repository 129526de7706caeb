// SPDX-License-Identifier: Apache-2.0
// nstance-admin end to end against a real nstance-server process (issue 4): register an operator
// with a nonce, list groups, scale, create and delete a dynamic group, refresh config (valid and
// invalid). The CLI runs in-process through runAdmin (the same code as the binary); outputs are
// printed as test diagnostics so a run shows them.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runAdmin } from "../../src/admin/main.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import {
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../support/shard-servers.js";

interface Run {
  code: number;
  out: string;
  err: string;
}

describe("nstance-admin against a real server", { concurrency: false }, () => {
  let dir = "";
  let bucket = "";
  let identityDir = "";
  let server: ShardServer;
  let servers: string;

  const admin = async (argv: string[], stdin?: string): Promise<Run> => {
    let out = "";
    let err = "";
    const code = await runAdmin(argv, {
      env: { NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      ...(stdin !== undefined ? { readStdin: async () => stdin } : {}),
    });
    return { code, out, err };
  };
  const shardCmd = (...argv: string[]) =>
    admin([...argv, "--servers", servers, "--identity-dir", identityDir]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-admin-e2e-"));
    bucket = join(dir, "bucket");
    identityDir = join(dir, "identity");
    await writeShardConfig(bucket, await shardConfigText(STEADY_ELECTION));
    const started = await startShardServers({
      count: 1,
      workDir: dir,
      storageArgs: ["--storage", "file", "--bucket", bucket],
    });
    server = started[0]!;
    await waitForSingleLeader([server], 90_000);
    servers = `local=localhost:${server.ports.operator}`;
  });
  after(async () => {
    await server?.proc.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("registers an operator with a nonce minted from storage", async (t) => {
    const nonce = await admin([
      "cluster",
      "nonce",
      "--storage",
      "file",
      "--bucket",
      bucket,
      "--cluster-id",
      "local",
      "--encryption-key-env",
      "NSTANCE_ENCRYPTION_KEY",
    ]);
    assert.equal(nonce.code, 0, nonce.err);
    assert.match(nonce.out.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const reg = await admin(
      [
        "cluster",
        "register-operator",
        "--nonce-file",
        "-",
        "--registration-addr",
        `localhost:${server.ports.registration}`,
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--identity-dir",
        identityDir,
      ],
      nonce.out,
    );
    t.diagnostic(`register-operator → ${reg.code}\n${reg.out}${reg.err}`);
    assert.equal(reg.code, 0, reg.err);
    assert.match(await readFile(join(identityDir, "identity.crt"), "utf8"), /BEGIN CERTIFICATE/);
    // The nonce is single-use for another key.
    const again = await admin(
      [
        "cluster",
        "register-operator",
        "--nonce-file",
        "-",
        "--registration-addr",
        `localhost:${server.ports.registration}`,
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--identity-dir",
        join(dir, "identity-2"),
      ],
      nonce.out,
    );
    assert.equal(again.code, 1, `a second key must be refused: ${again.out}${again.err}`);
  });

  it("lists, scales, creates and deletes groups", async (t) => {
    let r = await shardCmd("group", "list");
    t.diagnostic(`group list →\n${r.out}`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /web/);

    r = await shardCmd("group", "scale", "web", "5");
    t.diagnostic(`group scale web 5 →\n${r.out}`);
    assert.equal(r.code, 0, r.err);
    r = await shardCmd("group", "list", "--json");
    const groups = JSON.parse(r.out) as unknown;
    assert.match(JSON.stringify(groups), /"size":5/);

    r = await shardCmd(
      "group",
      "create",
      "api",
      "--template",
      "web",
      "--size",
      "2",
      "--var",
      "tier=backend",
    );
    t.diagnostic(`group create api →\n${r.out}`);
    assert.equal(r.code, 0, r.err);
    r = await shardCmd("group", "status", "api");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /api/);
    // The dynamic groups file in storage now holds both changes.
    const dyn = await readFile(join(bucket, "groups", "local.jsonc"), "utf8");
    assert.match(dyn, /"api"/);
    assert.match(dyn, /"size": 5/);

    r = await shardCmd("group", "delete", "api");
    t.diagnostic(`group delete api →\n${r.out}`);
    assert.equal(r.code, 0, r.err);
    r = await shardCmd("group", "status", "api");
    assert.equal(r.code, 4, `deleted group: ${r.out}${r.err}`);

    // A restricted field of a static group is refused with a reason.
    r = await shardCmd("group", "create", "web", "--template", "web", "--size", "1");
    assert.notEqual(r.code, 0);
  });

  it("refreshes config: a valid change is applied, an invalid one refused and the old kept", async (t) => {
    let r = await shardCmd("config", "status", "--json");
    assert.equal(r.code, 0, r.err);
    const before = JSON.stringify(JSON.parse(r.out));

    await writeShardConfig(bucket, `${await shardConfigText(STEADY_ELECTION)}\n// edited\n`);
    r = await shardCmd("config", "refresh");
    t.diagnostic(`config refresh (valid) →\n${r.out}${r.err}`);
    assert.equal(r.code, 0, r.err);
    r = await shardCmd("config", "status", "--json");
    const afterValid = JSON.stringify(JSON.parse(r.out));
    assert.notEqual(afterValid, before, "the etag changed");

    await writeFile(
      join(bucket, "config", "local.jsonc"),
      (await shardConfigText(STEADY_ELECTION)).replace('"web"', '"wbe"'),
    );
    r = await shardCmd("config", "refresh");
    t.diagnostic(`config refresh (invalid) → ${r.code}\n${r.out}${r.err}`);
    assert.equal(r.code, 1);
    assert.match(r.err, /error: shard local/);
    r = await shardCmd("config", "status", "--json");
    const loadedEtag = (text: string) =>
      (JSON.parse(text) as { results: Array<{ config: { etag: string } }> }).results[0]?.config
        .etag;
    assert.equal(loadedEtag(r.out), loadedEtag(afterValid), "the old config stays loaded");
    const h = await server.proc.health();
    assert.equal(h.status, 200);
  });
});
