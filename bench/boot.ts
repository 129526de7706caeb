// SPDX-License-Identifier: Apache-2.0
/**
 * Boot time: from process spawn to the first 200 on /health, median of 10 runs, with a warm
 * cache dir (SQLite and config copies present) and a fresh one, on file storage and on S3 (s3rver).
 * Usage: npx tsx bench/boot.ts [runs]
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStorage } from "../src/storage/create-storage.js";
import { startS3Server } from "../test/support/s3-server.js";
import { freePort, startServerProcess } from "../test/support/server-process.js";
import { machineLine, median, percentile, writeBenchSection } from "./bench-report.js";

const RUNS = Number(process.argv[2] ?? 10);
const EXAMPLE = new URL("../examples/local.jsonc", import.meta.url).pathname;

async function timeBoot(args: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const srv = startServerProcess({ args, env, healthPort: await freePort() });
  try {
    await srv.waitHealth((s) => s === 200, 60_000);
    return performance.now() - t0;
  } finally {
    await srv.stop();
  }
}

async function series(
  name: string,
  args: (cachedir: string) => string[],
  env: Record<string, string>,
  warm: boolean,
) {
  const dir = await mkdtemp(join(tmpdir(), "nstance-bench-boot-"));
  const xs: number[] = [];
  try {
    if (warm) await timeBoot(args(join(dir, "cache")), env); // populate the cache once
    for (let i = 0; i < RUNS; i++) {
      const cachedir = warm ? join(dir, "cache") : join(dir, `cache-${i}`);
      xs.push(await timeBoot(args(cachedir), env));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const row = { name, median: median(xs), p90: percentile(xs, 90), min: Math.min(...xs) };
  console.log(
    `${name.padEnd(28)} median ${row.median.toFixed(0)} ms  p90 ${row.p90.toFixed(0)} ms  min ${row.min.toFixed(0)} ms`,
  );
  return row;
}

const work = await mkdtemp(join(tmpdir(), "nstance-bench-bucket-"));
const bucket = join(work, "bucket");
await mkdir(join(bucket, "config"), { recursive: true });
await copyFile(EXAMPLE, join(bucket, "config", "local.jsonc"));
const s3 = await startS3Server();
await (await createStorage({ kind: "s3", bucket: s3.bucket }, s3.env)).put(
  "config/local.jsonc",
  await readFile(EXAMPLE),
);

const fileArgs = (c: string) => [
  "--id",
  "b",
  "--shard",
  "local",
  "--storage",
  "file",
  "--bucket",
  bucket,
  "--cachedir",
  c,
];
const s3Args = (c: string) => [
  "--id",
  "b",
  "--shard",
  "local",
  "--storage",
  "s3",
  "--bucket",
  s3.bucket,
  "--cachedir",
  c,
];
// The floor: node + tsx start-up of a script that does nothing but exit.
const t0 = performance.now();
const { spawnSync } = await import("node:child_process");
const floors: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const t = performance.now();
  spawnSync(process.execPath, ["--import", "tsx", "-e", "0"]);
  floors.push(performance.now() - t);
}
void t0;
const rows = [
  await series("file, cached", fileArgs, {}, true),
  await series("file, fresh cache dir", fileArgs, {}, false),
  await series("s3 (s3rver), cached", s3Args, s3.env, true),
  await series("s3 (s3rver), fresh cache dir", s3Args, s3.env, false),
];
await s3.stop();
await rm(work, { recursive: true, force: true });
console.log(`${"baseline: node+tsx, no work".padEnd(28)} median ${median(floors).toFixed(0)} ms`);

await writeBenchSection(
  "Boot: process start to first 200 (bench/boot.ts)",
  [
    `Median of ${RUNS} runs on ${machineLine()}. "Cached" re-uses a cache dir that already holds the`,
    'SQLite database and config copies; "fresh" starts from an empty one. Storage is always read first',
    "(the cache is the fallback when storage is unreachable), so both paths fetch the config.",
    "",
    "| case | median | p90 | min |",
    "|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.median.toFixed(0)} ms | ${r.p90.toFixed(0)} ms | ${r.min.toFixed(0)} ms |`,
    ),
    `| baseline: \`node --import tsx -e 0\` | ${median(floors).toFixed(0)} ms | ${percentile(floors, 90).toFixed(0)} ms | ${Math.min(...floors).toFixed(0)} ms |`,
  ].join("\n"),
);
