// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { StorageError } from "../shared/errors.js";
import { FileKeyLock, hostIdentity } from "./file-key-lock.js";
import { FileStorage } from "./file-storage.js";
import { TEMP_FILE_PREFIX } from "./validate-object-key.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHILD = join(REPO_ROOT, "test/support/file-storage-child.ts");

let root: string;
let n = 0;
/** A fresh bucket directory under the test's temp dir. */
const bucketDir = (): string => join(root, `bucket-${n++}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), "nstance-file-storage-"));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function startChild(args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NODE_NO_WARNINGS: "1" },
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextLine(lines: AsyncIterator<string>): Promise<string> {
  const r = await lines.next();
  assert.ok(!r.done, "child exited early");
  return r.value;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  return child.pid!;
}

describe("FileStorage", () => {
  it("writes objects under the bucket directory, owner-only", async () => {
    const dir = bucketDir();
    const s = new FileStorage({ dir });
    await s.put("shard/a/leader.json", "{}");
    const st = await stat(join(dir, "shard/a/leader.json"));
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "shard"))).mode & 0o777, 0o700);
    assert.equal(s.description, `file:${dir}`);
  });

  it("never lists temp files or lock files", async () => {
    const dir = bucketDir();
    const s = new FileStorage({ dir });
    await s.put("x/obj", "1");
    await writeFile(join(dir, "x", `${TEMP_FILE_PREFIX}123-abc`), "partial");
    await writeFile(join(dir, `${TEMP_FILE_PREFIX}999-def`), "partial");
    assert.deepEqual(
      (await s.list("")).map((o) => o.key),
      ["x/obj"],
    );
    // Locks live beside the bucket, not in it.
    assert.ok((await stat(`${dir}.locks`)).isDirectory());
    assert.deepEqual(await readdir(dir), ["x"].concat(`${TEMP_FILE_PREFIX}999-def`).sort());
  });

  it("delete removes directories it leaves empty", async () => {
    const dir = bucketDir();
    const s = new FileStorage({ dir });
    await s.put("a/b/c/obj", "1");
    await s.put("a/keep", "1");
    await s.delete("a/b/c/obj");
    assert.deepEqual(await readdir(join(dir, "a")), ["keep"]);
    await s.put("a/b/c/obj", "again");
    assert.equal((await s.get("a/b/c/obj"))?.body.toString(), "again");
  });

  it("reports a key that collides with a directory as a permanent error", async () => {
    const s = new FileStorage({ dir: bucketDir() });
    await s.put("a/b", "1");
    await assert.rejects(
      s.put("a", "file where a directory is"),
      (err: unknown) =>
        err instanceof StorageError &&
        !err.transient &&
        /conflicts with a directory/.test(err.message),
    );
    assert.equal(await s.get("a"), undefined, "a directory is not an object");
    await s.put("f", "1");
    await assert.rejects(
      s.put("f/g", "under a file"),
      (err: unknown) => err instanceof StorageError && !err.transient,
    );
  });

  it("breaks a lock left by a dead process at once", async () => {
    const dir = bucketDir();
    const s = new FileStorage({ dir, lockTimeoutMs: 5_000 });
    const lockPath = new FileKeyLock({ dir: `${dir}.locks` }).lockPath("k");
    await mkdir(`${dir}.locks`, { recursive: true });
    const record = { pid: await deadPid(), host: hostIdentity(), token: "t", key: "k" };
    await writeFile(lockPath, JSON.stringify(record));
    const started = Date.now();
    await s.put("k", "v", { condition: { ifNoneMatch: "*" } });
    assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started}ms`);
  });

  it("breaks a lock with our own pid that we do not hold (a restarted container's pid 1)", async () => {
    const dir = bucketDir();
    const s = new FileStorage({ dir, lockTimeoutMs: 5_000 });
    const lockPath = new FileKeyLock({ dir: `${dir}.locks` }).lockPath("k");
    await mkdir(`${dir}.locks`, { recursive: true });
    const record = { pid: process.pid, host: hostIdentity(), token: "old", key: "k" };
    await writeFile(lockPath, JSON.stringify(record));
    await s.put("k", "v");
    assert.equal((await s.get("k"))?.body.toString(), "v");
  });

  it("waits for a live holder, times out transiently, and breaks the lock once it is stale", async () => {
    const dir = bucketDir();
    const holder = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], {
      stdio: "ignore",
    });
    try {
      const lockPath = new FileKeyLock({ dir: `${dir}.locks` }).lockPath("k");
      await mkdir(`${dir}.locks`, { recursive: true });
      const record = { pid: holder.pid, host: hostIdentity(), token: "live", key: "k" };
      await writeFile(lockPath, JSON.stringify(record));
      const impatient = new FileStorage({ dir, lockTimeoutMs: 300 });
      await assert.rejects(
        impatient.put("k", "v"),
        (err: unknown) =>
          err instanceof StorageError && err.transient && /timed out/.test(err.message),
      );
      // An old lock is broken even though its holder still runs (a hung process).
      const past = new Date(Date.now() - 60_000);
      await utimes(lockPath, past, past);
      const s = new FileStorage({ dir, lockTimeoutMs: 5_000, lockStaleMs: 10_000 });
      await s.put("k", "v");
      assert.equal((await s.get("k"))?.body.toString(), "v");
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("child processes racing on the same keys: exactly one winner per key", async () => {
    const dir = bucketDir();
    const procs = 4;
    const rounds = 25;
    const s = new FileStorage({ dir });
    for (let r = 0; r < rounds; r++) await s.put(`match/${r}`, "seed");
    const goFile = join(root, `go-${n++}`);
    const children = Array.from({ length: procs }, (_, i) =>
      startChild(["race", dir, `p${i}`, String(rounds), goFile]),
    );
    try {
      for (const c of children) assert.equal(await nextLine(c.lines), "ready");
      await writeFile(goFile, "");
      const results = await Promise.all(
        children.map(
          async (c) => JSON.parse(await nextLine(c.lines)) as { create: number[]; match: number[] },
        ),
      );
      for (let r = 0; r < rounds; r++) {
        for (const kind of ["create", "match"] as const) {
          const winners = results.flatMap((res, i) => (res[kind].includes(r) ? [i] : []));
          assert.equal(winners.length, 1, `${kind}/${r}: winners ${JSON.stringify(winners)}`);
          const got = await s.get(`${kind}/${r}`);
          assert.equal(got?.body.toString(), `p${winners[0]}:${r}`);
        }
      }
    } finally {
      for (const c of children) c.child.kill("SIGKILL");
    }
  });

  it("kill -9 during writes leaves the old or the new object, and the next write proceeds", async () => {
    const dir = bucketDir();
    const size = 4 * 1024 * 1024;
    const s = new FileStorage({ dir, lockTimeoutMs: 10_000 });
    for (let round = 0; round < 5; round++) {
      const { child, lines } = startChild(["write-loop", dir, "big", String(size)]);
      for (let i = 0; i < 2 + round; i++) assert.match(await nextLine(lines), /^wrote /);
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20)));
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
      const got = await s.get("big");
      assert.ok(got, "object exists");
      assert.equal(got.body.length, size);
      const first = got.body[0]!;
      assert.ok(first === 0x41 || first === 0x42);
      assert.ok(got.body.equals(Buffer.alloc(size, first)), "body is entirely one version");
      assert.deepEqual(
        (await s.list("")).map((o) => o.key),
        ["big"],
      );
      // Any lock the dead writer held is broken by the pid check, well before lockTimeoutMs.
      const started = Date.now();
      await s.put("big", "after", { condition: { ifMatch: got.etag } });
      assert.ok(Date.now() - started < 5_000);
    }
  });
});
