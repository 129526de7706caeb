// SPDX-License-Identifier: Apache-2.0
// A standby serves health and read-only operator calls; a mutating call fails naming the leader.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runAdmin } from "../../src/admin/main.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import { startShardServers, waitForSingleLeader } from "../support/shard-servers.js";

describe("standby behaviour", () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it("reads work on a standby, writes are refused with the leader's name", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-standby-"));
    const bucket = join(dir, "bucket");
    await writeShardConfig(bucket, await shardConfigText(STEADY_ELECTION));
    const servers = await startShardServers({
      count: 2,
      workDir: dir,
      storageArgs: ["--storage", "file", "--bucket", bucket],
    });
    cleanups.push(async () => {
      await Promise.all(servers.map((s) => s.proc.stop()));
      await rm(dir, { recursive: true, force: true });
    });
    const { leader } = await waitForSingleLeader(servers, 90_000);
    const standby = servers.find((s) => s !== leader)!;
    const h = await standby.proc.health();
    assert.equal(h.status, 200, "a standby is healthy");
    assert.equal((h.body?.leadership as { role?: string } | undefined)?.role, "standby");

    const run = async (argv: string[]) => {
      let out = "";
      let err = "";
      const code = await runAdmin(argv, {
        env: { NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY },
        stdout: { write: (s: string) => (out += s) },
        stderr: { write: (s: string) => (err += s) },
      });
      return { code, out, err };
    };
    const identityDir = join(dir, "identity");
    const reg = await run([
      "cluster",
      "register-operator",
      "--storage",
      "file",
      "--bucket",
      bucket,
      "--encryption-key-env",
      "NSTANCE_ENCRYPTION_KEY",
      "--identity-dir",
      identityDir,
    ]);
    assert.equal(reg.code, 0, reg.err);
    const onStandby = [
      "--servers",
      `local=localhost:${standby.ports.operator}`,
      "--identity-dir",
      identityDir,
    ];
    const list = await run(["group", "list", ...onStandby]);
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /web/);
    const scale = await run(["group", "scale", "web", "4", ...onStandby]);
    assert.equal(scale.code, 1, scale.out);
    assert.match(scale.err, new RegExp(`not the shard leader; the leader is ${leader.id}`));
  });
});
