// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: a shard config derived from examples/local.jsonc with edits (JSON paths → values),
 * written into a bucket directory or any ObjectStorage.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { applyEdits, type JSONPath, modify } from "jsonc-parser";

const EXAMPLE = new URL("../../examples/local.jsonc", import.meta.url);

/** Returns examples/local.jsonc with each `[path, value]` edit applied (comments kept). */
export async function shardConfigText(edits: Array<[JSONPath, unknown]> = []): Promise<string> {
  let text = await readFile(EXAMPLE, "utf8");
  for (const [path, value] of edits) {
    text = applyEdits(
      text,
      modify(text, path, value, { formattingOptions: { insertSpaces: true, tabSize: 2 } }),
    );
  }
  return text;
}

/** Election timings fast enough for tests (leader timeout 2 s). */
export const FAST_ELECTION: Array<[JSONPath, unknown]> = [
  [
    ["shard", "leader_election"],
    { frequent_interval: "500ms", infrequent_interval: "2s", leader_timeout: "2s" },
  ],
];

/**
 * Election timings for tests that need one steady leader on a loaded machine (a 6 s lease tolerates
 * long event-loop stalls; the first election of a new shard waits one lease).
 */
export const STEADY_ELECTION: Array<[JSONPath, unknown]> = [
  [
    ["shard", "leader_election"],
    { frequent_interval: "1s", infrequent_interval: "5s", leader_timeout: "6s" },
  ],
];

/** Writes `config/{shard}.jsonc` into a file-storage bucket directory. */
export async function writeShardConfig(
  bucket: string,
  text: string,
  shard = "local",
): Promise<string> {
  const path = join(bucket, "config", `${shard}.jsonc`);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, text);
  return path;
}
