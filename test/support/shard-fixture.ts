// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: a shard config derived from examples/local.jsonc with edits (JSON paths → values),
 * written into a bucket directory or any ObjectStorage.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { applyEdits, type JSONPath, modify, parse } from "jsonc-parser";

const EXAMPLE = new URL("../../examples/local.jsonc", import.meta.url);

let processStateDir: string | undefined;

/**
 * The `local` provider's state directory for configs of this test process that name none: one per
 * process (servers of one shard share it, as VMs share a cloud), never the repository's
 * `.nstance/local-instances` of `npm start`. The agents it holds are killed when the process exits:
 * like VMs they outlive their server, and a leaked agent would load the rest of the suite.
 */
function localStateDir(): string {
  if (processStateDir) return processStateDir;
  const dir = mkdtempSync(join(tmpdir(), "nstance-test-local-"));
  processStateDir = dir;
  process.on("exit", () => reapLocalAgents(dir));
  return dir;
}

/** Kills every agent process the local provider started under `stateDir`, then removes it. */
export function reapLocalAgents(stateDir: string): void {
  const instances = join(stateDir, "instances");
  let ids: string[] = [];
  try {
    ids = readdirSync(instances);
  } catch {
    // Nothing was created.
  }
  for (const id of ids) {
    try {
      const meta = JSON.parse(readFileSync(join(instances, id, "meta.json"), "utf8")) as {
        pid?: number;
      };
      // The provider starts each agent as a process-group leader.
      if (meta.pid) process.kill(-meta.pid, "SIGKILL");
    } catch {
      // Gone already, or no meta.json (an interrupted create).
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
}

/**
 * Returns examples/local.jsonc with each `[path, value]` edit applied (comments kept). A config
 * left on the `local` provider without a `state_dir` gets this process's {@link localStateDir}.
 */
export async function shardConfigText(edits: Array<[JSONPath, unknown]> = []): Promise<string> {
  let text = await readFile(EXAMPLE, "utf8");
  const edit = (path: JSONPath, value: unknown): void => {
    text = applyEdits(
      text,
      modify(text, path, value, { formattingOptions: { insertSpaces: true, tabSize: 2 } }),
    );
  };
  for (const [path, value] of edits) edit(path, value);
  const infra = (parse(text) as { shard?: { infra?: Record<string, unknown> } }).shard?.infra;
  const options = infra?.options as Record<string, unknown> | undefined;
  if (infra?.provider === "local" && options?.state_dir === undefined) {
    edit(["shard", "infra", "options", "state_dir"], localStateDir());
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
