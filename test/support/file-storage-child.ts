// SPDX-License-Identifier: Apache-2.0
/**
 * A child process for FileStorage's cross-process tests. Usage:
 *   race <dir> <id> <rounds> <goFile>  — read the etag of `match/<r>` for every round, print
 *     "ready", wait for <goFile>, then per round try create-only `create/<r>` and ifMatch
 *     `match/<r>`; print one JSON line {"create":[rounds won],"match":[rounds won]}.
 *   write-loop <dir> <key> <bytes>     — overwrite <key> forever with alternating bodies of
 *     <bytes> bytes filled with "A" or "B", printing "wrote <n>" after each write.
 */
import { existsSync } from "node:fs";
import { PreconditionFailedError } from "../../src/shared/errors.js";
import { sleep } from "../../src/shared/sleep.js";
import { FileStorage } from "../../src/storage/file-storage.js";

async function race(dir: string, id: string, rounds: number, goFile: string): Promise<void> {
  const storage = new FileStorage({ dir });
  const etags: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const cur = await storage.head(`match/${r}`);
    if (!cur) throw new Error(`match/${r} was not seeded`);
    etags.push(cur.etag);
  }
  process.stdout.write("ready\n");
  while (!existsSync(goFile)) await sleep(2);
  const won = { create: [] as number[], match: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    for (const [kind, key, cond] of [
      ["create", `create/${r}`, { ifNoneMatch: "*" as const }],
      ["match", `match/${r}`, { ifMatch: etags[r]! }],
    ] as const) {
      try {
        await storage.put(key, `${id}:${r}`, { condition: cond });
        won[kind].push(r);
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
      }
    }
  }
  process.stdout.write(`${JSON.stringify(won)}\n`);
}

async function writeLoop(dir: string, key: string, bytes: number): Promise<void> {
  const storage = new FileStorage({ dir });
  const bodies = [Buffer.alloc(bytes, "A"), Buffer.alloc(bytes, "B")];
  for (let n = 0; ; n++) {
    await storage.put(key, bodies[n % 2]!);
    process.stdout.write(`wrote ${n}\n`);
  }
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "race") {
  await race(args[0]!, args[1]!, Number(args[2]), args[3]!);
} else if (mode === "write-loop") {
  await writeLoop(args[0]!, args[1]!, Number(args[2]));
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
