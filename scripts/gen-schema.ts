// SPDX-License-Identifier: Apache-2.0
// Writes the generated config artefacts: schema/config.schema.json, schema/groups.schema.json and
// docs/configuration.md, all from src/config/config-schema.ts. With --check, writes nothing and
// exits 1 when a committed file differs from a fresh generation.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generatedConfigFiles } from "../src/config/generated-files.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = process.argv.includes("--check");
let stale = 0;
for (const [path, content] of Object.entries(generatedConfigFiles())) {
  const file = join(root, path);
  let current: string | undefined;
  try {
    current = readFileSync(file, "utf8");
  } catch {
    current = undefined;
  }
  if (current === content) continue;
  if (check) {
    console.error(`${path} is out of date: run npm run schema`);
    stale++;
    continue;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  console.log(`wrote ${path}`);
}
process.exitCode = stale > 0 ? 1 : 0;
