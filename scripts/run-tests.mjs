// SPDX-License-Identifier: Apache-2.0
// Runs every *.test.ts under src/ and test/ with node's test runner (Node 20's --test does not
// expand globs). Extra arguments filter the file list by substring.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

// Slowest first (multi-process suites), so the long files do not all start last and the run's
// wall time stays close to the total work divided by the concurrency.
const SLOW_FIRST = [
  "test/chaos/",
  "test/e2e/",
  "test/election/",
  "test/server/",
  "test/admin/",
  "test/",
];
const rank = (f) => {
  const i = SLOW_FIRST.findIndex((p) => f.startsWith(p));
  return i === -1 ? SLOW_FIRST.length : i;
};
const filters = process.argv.slice(2);
const files = [...find("src", []), ...find("test", [])]
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const concurrency = process.env.NSTANCE_TEST_CONCURRENCY ?? "3";
const r = spawnSync(
  process.execPath,
  [
    "--import",
    "tsx",
    "--test",
    `--test-concurrency=${concurrency}`,
    // A hung test fails with its name after 10 minutes instead of stalling the whole run.
    "--test-timeout=600000",
    "--test-reporter=spec",
    ...files,
  ],
  { stdio: "inherit", env: { ...process.env, NODE_NO_WARNINGS: "1" } },
);
process.exit(r.status ?? 1);
