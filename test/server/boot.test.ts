// SPDX-License-Identifier: Apache-2.0
// Boot sequence of a real nstance-server process (seed 000 "Startup Behavior").
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import { createStorage } from "../../src/storage/create-storage.js";
import { startS3Server } from "../support/s3-server.js";
import { freePort, startServerProcess } from "../support/server-process.js";
import { shardConfigText } from "../support/shard-fixture.js";

function configSource(body: Record<string, unknown> | undefined): unknown {
  return (body?.config as { source?: string } | undefined)?.source;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "nstance-boot-"));
}

function fileArgs(bucket: string, cachedir: string): string[] {
  return [
    "--id",
    "s1",
    "--shard",
    "local",
    "--storage",
    "file",
    "--bucket",
    bucket,
    "--cachedir",
    cachedir,
  ];
}

describe("server boot", { concurrency: true }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("answers 503 while the config is missing, retries, then 200 once it appears", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const bucket = join(dir, "bucket");
    await mkdir(join(bucket, "config"), { recursive: true });
    const srv = startServerProcess({
      args: fileArgs(bucket, join(dir, "cache")),
      healthPort: await freePort(),
    });
    try {
      await srv.waitHealth((s) => s === 503);
      const before = await srv.health();
      assert.equal(before.body?.ready, false);
      await srv.waitLog((l) => l.msg === "Configuration load failed, retrying" && l.attempt === 1);
      await writeFile(join(bucket, "config", "local.jsonc"), await shardConfigText());
      await srv.waitHealth((s) => s === 200, 60_000);
      const ok = await srv.health();
      assert.equal(configSource(ok.body), "storage");
    } finally {
      await srv.stop();
    }
  });

  it("hangs with 503 and a fatal log when every attempt fails (no exit)", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const srv = startServerProcess({
      args: fileArgs(join(dir, "bucket"), join(dir, "cache")),
      healthPort: await freePort(),
    });
    try {
      const fatal = await srv.waitLog((l) => l.fatal === true, 60_000);
      assert.match(String(fatal.err), /config\/local\.jsonc does not exist/);
      // Exactly three attempts: two retry warnings, then the fatal line.
      assert.deepEqual(
        srv.logs
          .filter((l) => l.msg === "Configuration load failed, retrying")
          .map((l) => l.retry_in_ms),
        [1000, 2000],
      );
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(srv.child.exitCode, null, "the server must not exit");
      const h = await srv.health();
      assert.equal(h.status, 503);
      assert.match(String(h.body?.reason), /configuration failed to load/);
    } finally {
      assert.equal(await srv.stop(), 0);
    }
  });

  it("boots from the cached copy when S3 is unreachable", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const s3 = await startS3Server();
    const cachedir = join(dir, "cache");
    const args = [
      "--id",
      "s1",
      "--shard",
      "local",
      "--storage",
      "s3",
      "--bucket",
      s3.bucket,
      "--cachedir",
      cachedir,
    ];
    await (await createStorage({ kind: "s3", bucket: s3.bucket }, s3.env)).put(
      "config/local.jsonc",
      await shardConfigText(),
    );
    const first = startServerProcess({ args, env: s3.env, healthPort: await freePort() });
    try {
      await first.waitHealth((s) => s === 200);
      assert.equal(configSource((await first.health()).body), "storage");
    } finally {
      await first.stop();
    }
    await s3.stop();
    const second = startServerProcess({ args, env: s3.env, healthPort: await freePort() });
    try {
      await second.waitHealth((s) => s === 200, 90_000);
      assert.equal(configSource((await second.health()).body), "cache");
    } finally {
      await second.stop();
    }
  });

  it("a kill -9 at any point of boot leaves SQLite and storage readable", async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const bucket = join(dir, "bucket");
    const cachedir = join(dir, "cache");
    await mkdir(join(bucket, "config"), { recursive: true });
    await writeFile(join(bucket, "config", "local.jsonc"), await shardConfigText());
    for (const delayMs of [150, 400, 700, 1000, 1500]) {
      const srv = startServerProcess({
        args: fileArgs(bucket, cachedir),
        healthPort: await freePort(),
      });
      await new Promise((r) => setTimeout(r, delayMs));
      srv.child.kill("SIGKILL");
      await srv.exited;
    }
    const srv = startServerProcess({
      args: fileArgs(bucket, cachedir),
      healthPort: await freePort(),
    });
    try {
      await srv.waitHealth((s) => s === 200);
    } finally {
      await srv.stop();
    }
    const db = new BetterSqlite3(join(cachedir, "db", "nstance.db"), { readonly: true });
    assert.equal(db.pragma("integrity_check", { simple: true }), "ok");
    assert.ok((db.prepare("SELECT count(*) AS n FROM groups").get() as { n: number }).n > 0);
    db.close();
  });
});
