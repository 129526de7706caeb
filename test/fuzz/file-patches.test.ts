// SPDX-License-Identifier: Apache-2.0
// Agent file patch fuzzing: random patches (hostile names, contents of every type, bad hashes)
// applied by the real FileReceiver, some interrupted at a random moment and then recovered as a
// restarted agent would, in a recv dir with symlinks planted to the outside. Never a write outside
// the agent's directories, never a partial patch. Key requests with hostile names, likewise.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import {
  type FilePatch,
  type FilePatchResult,
  FileReceiver,
} from "../../src/agent/file-receiver.js";
import { FileStream } from "../../src/agent/file-stream.js";
import { IdentityDir } from "../../src/agent/identity-dir.js";
import { KeyStore } from "../../src/agent/key-store.js";
import type { FileTransfer } from "../../src/protocol/gen/nstance/v1/agent.js";
import { NstanceError } from "../../src/shared/errors.js";
import { silentLogger } from "../../src/shared/logger.js";
import {
  changedPaths,
  fileContent,
  fileName,
  HOSTILE_NAMES,
  leftovers,
  plantSandbox,
  recvView,
  snapshot,
  withFiles,
} from "./agent-sandbox.js";
import { fuzzParameters, fuzzRuns } from "./fuzz-runs.js";

const PATCH_RUNS = 80;
const KEY_RUNS = 40;
const STREAM_RUNS = 200;
/** FileStream's patch size limit in the framing property: small, so some patches exceed it. */
const MAX_PATCH_BYTES = 64;

const patchFile = fc.record({ filename: fileName, content: fileContent });
const configHash = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("sha256:aa", "sha256:bb") },
  { weight: 1, arbitrary: fc.constantFrom("", "a\nb", "x".repeat(1000)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
);
/** A patch, and when to interrupt it: never, or after this many event-loop turns. */
const step = fc.record({
  files: fc.array(patchFile, { minLength: 0, maxLength: 5 }),
  hash: configHash,
  // A quarter of the patches are interrupted.
  interruptAfterTurns: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.nat({ max: 12 }) },
  ),
});

/** Aborts `ctl` after `turns` trips through the event loop (I/O callbacks run in between). */
function abortAfterTurns(ctl: AbortController, turns: number): void {
  const tick = (left: number): void => {
    if (left === 0) ctl.abort(new Error("interrupted"));
    else setImmediate(() => tick(left - 1));
  };
  tick(turns);
}

describe("agent file patches under fuzzing", () => {
  const roots: string[] = [];
  after(async () => {
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  /** A fresh sandbox (removed after the file) with its identity dir ready. */
  const sandbox = async (opts: { errorsLink?: boolean } = {}) => {
    const root = await mkdtemp(join(tmpdir(), "nstance-fuzz-agent-"));
    roots.push(root);
    const sb = await plantSandbox(root, opts);
    const identity = new IdentityDir({ dir: sb.identityDir, logger: silentLogger });
    await identity.ensure();
    const receiver = () =>
      new FileReceiver({ recvDir: sb.recvDir, identity, logger: silentLogger });
    return { root, sb, identity, receiver };
  };

  it(`random patch sequences (${fuzzRuns(PATCH_RUNS)} runs): nothing outside, never a partial patch`, async (t) => {
    const outcomes = { applied: 0, rejected: 0, interrupted: 0, failed: 0 };
    const failures = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (steps, errorsLink) => {
          const { root, sb, identity, receiver: newReceiver } = await sandbox({ errorsLink });
          const outside = await snapshotOutsideRecv(root);
          let hash = await identity.readConfigHash();

          for (const s of steps) {
            const before = await recvView(sb.recvDir);
            const files = new Map(s.files.map((f) => [f.filename, f.content]));
            const ctl = new AbortController();
            if (s.interruptAfterTurns !== undefined) abortAfterTurns(ctl, s.interruptAfterTurns);
            // A fresh receiver per patch: an interrupted one is a crashed agent's.
            const receiver = newReceiver();
            let result: FilePatchResult | undefined;
            try {
              result = await receiver.apply({ files: s.files, configHash: s.hash }, ctl.signal);
            } catch (err) {
              if (ctl.signal.aborted) outcomes.interrupted++;
              else {
                // An I/O refusal (a symlinked errors dir) is allowed; an untyped crash is not.
                assert.ok(
                  err instanceof NstanceError || (err as NodeJS.ErrnoException).code !== undefined,
                  `apply threw ${String(err)}`,
                );
                outcomes.failed++;
                const kind = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
                failures.set(kind, (failures.get(kind) ?? 0) + 1);
              }
            }
            // The restarted agent recovers before anything else.
            await newReceiver().recover();

            const after = await recvView(sb.recvDir);
            const whole = withFiles(before, files);
            const nowHash = await identity.readConfigHash();
            if (result?.applied) {
              outcomes.applied++;
              assert.deepEqual(changedPaths(whole, after), [], "an applied patch is all there");
              assert.equal(nowHash, s.hash);
            } else if (result) {
              outcomes.rejected++;
              assert.deepEqual(changedPaths(before, after), [], "a rejected patch changes nothing");
              assert.equal(nowHash, hash);
            } else {
              const none = changedPaths(before, after).length === 0;
              const all = changedPaths(whole, after).length === 0;
              assert.ok(
                none || all,
                `interrupted patch is partial: ${changedPaths(before, after)}`,
              );
              assert.equal(nowHash, all && !none ? s.hash : nowHash);
            }
            hash = nowHash;
            assert.deepEqual(await leftovers(sb.recvDir), [], "recovery leaves no staging files");
            assert.deepEqual(
              changedPaths(outside, await snapshotOutsideRecv(root)).filter(
                (p) => p !== "agent/identity/config.hash",
              ),
              [],
              "nothing changed outside recv",
            );
          }
          await rm(root, { recursive: true, force: true });
        },
      ),
      fuzzParameters(PATCH_RUNS),
    );
    t.diagnostic(`${JSON.stringify(outcomes)}; failures ${JSON.stringify([...failures])}`);
    assert.ok(outcomes.applied > 0 && outcomes.rejected > 0, JSON.stringify(outcomes));
  });

  it("a rejected file of the longest legal name is reported, not a failed write", async () => {
    // Found by this fuzzer: the error file's temporary name (`.<name>.<hex>.tmp`) went past
    // NAME_MAX, so the rejection itself failed with ENAMETOOLONG and no reason was recorded.
    const { sb, receiver: newReceiver } = await sandbox();
    const receiver = newReceiver();
    const name = `${"\u00e9".repeat(125)}.json`; // 255 bytes
    const r = await receiver.apply({ files: [{ filename: name, content: "{" }], configHash: "h" });
    assert.equal(r.applied, false);
    assert.match(await readFile(join(sb.recvDir, "errors", name), "utf8"), /invalid JSON/);
    const ok = await receiver.apply({
      files: [{ filename: name, content: "{}" }],
      configHash: "h",
    });
    assert.equal(ok.applied, true);
    assert.deepEqual(await leftovers(sb.recvDir), []);
  });

  it("a config hash that would not read back as sent is refused", async () => {
    // Found by this fuzzer: " " and " sha256:x" were stored, then read back trimmed, so the agent
    // would report a hash other than the one it was sent.
    const { identity, receiver: newReceiver } = await sandbox();
    const receiver = newReceiver();
    for (const configHash of [" ", " sha256:x", "sha256:x "]) {
      const r = await receiver.apply({ files: [{ filename: "a.txt", content: "a" }], configHash });
      assert.equal(r.applied, false, JSON.stringify(configHash));
    }
    assert.equal(await identity.readConfigHash(), undefined);
  });

  it(`stream framing (${fuzzRuns(STREAM_RUNS)} runs): each commit applies exactly its own files`, async () => {
    const message = fc.oneof(
      fc.record({ filename: fileName, content: fileContent, configHash: fc.constant("") }),
      fc.record({ filename: fc.constant(""), content: fileContent, configHash: configHash }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(message, { maxLength: 12 }), async (msgs) => {
        // What the agent must do: buffer files until a commit, apply them only with a hash and
        // within the size limit, and drop files left without a commit when the stream ends.
        const want: Array<{ names: string[]; hash: string }> = [];
        let pending: string[] = [];
        let bytes = 0;
        let commits = 0;
        for (const m of msgs) {
          if (m.filename !== "") {
            pending.push(m.filename);
            bytes += m.content.length;
            continue;
          }
          commits++;
          if (m.configHash !== "" && bytes <= MAX_PATCH_BYTES) {
            want.push({ names: pending, hash: m.configHash });
          }
          pending = [];
          bytes = 0;
        }
        const applied: Array<{ names: string[]; hash: string }> = [];
        let outcomes = 0;
        const transfers: FileTransfer[] = msgs.map((m) => ({ ...m, lastModified: undefined }));
        const stream = new FileStream({
          channel: {
            client: {
              receiveFiles: () => Object.assign(iterate(transfers), { cancel: () => {} }),
            } as never,
            reportFailure: () => {},
          },
          receiver: {
            apply: async (patch: FilePatch) => {
              applied.push({ names: patch.files.map((f) => f.filename), hash: patch.configHash });
              return { applied: true, files: [], completedAtMs: 0 };
            },
          },
          logger: silentLogger,
          maxPatchBytes: MAX_PATCH_BYTES,
          backoff: { initialMs: 60_000, maxMs: 60_000 },
          onPatch: () => outcomes++,
        });
        stream.start();
        const deadline = Date.now() + 10_000;
        while (outcomes < commits && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 1));
        }
        await stream.stop();
        assert.equal(outcomes, commits, "every commit has an outcome");
        assert.deepEqual(applied, want);
      }),
      fuzzParameters(STREAM_RUNS),
    );
  });

  it(`key requests with hostile names (${fuzzRuns(KEY_RUNS)} runs): keys only inside the keys dir`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fileName, fc.constantFrom("linked", "web", ...HOSTILE_NAMES)), {
          minLength: 1,
          maxLength: 4,
        }),
        async (names) => {
          const root = await mkdtemp(join(tmpdir(), "nstance-fuzz-keys-"));
          roots.push(root);
          const sb = await plantSandbox(root);
          const before = await snapshot(root);
          const store = new KeyStore({
            keysDir: sb.keysDir,
            identityDir: sb.identityDir,
            logger: silentLogger,
          });
          const made = new Set<string>();
          for (const name of names) {
            try {
              await store.ensureKey(name);
              made.add(name);
            } catch (err) {
              const e = err as NodeJS.ErrnoException;
              assert.ok(err instanceof NstanceError || e.code !== undefined, String(err));
            }
          }
          const changed = changedPaths(before, await snapshot(root));
          const allowed = new Set(
            [...made].flatMap((n) => [`agent/keys/${n}.key`, `agent/keys/${n}.pub`]),
          );
          assert.deepEqual(
            changed.filter((p) => !allowed.has(p)),
            [],
            `only keys/<name>.key and .pub of accepted names change (made ${[...made]})`,
          );
          // The symlinked key was replaced or refused, never written through.
          assert.equal((before.get("outside/canary.txt") as { file: string }).file, "Y2FuYXJ5");
          await rm(root, { recursive: true, force: true });
        },
      ),
      fuzzParameters(KEY_RUNS),
    );
  });
});

/** The messages of one stream, as the gRPC call yields them. */
async function* iterate(msgs: readonly FileTransfer[]): AsyncGenerator<FileTransfer> {
  for (const m of msgs) {
    await Promise.resolve();
    yield m;
  }
}

/** Everything under `root` except the recv dir, whose changes the patch checks judge. */
async function snapshotOutsideRecv(root: string) {
  const all = await snapshot(root);
  for (const k of [...all.keys()])
    if (k === "agent/recv" || k.startsWith("agent/recv/")) all.delete(k);
  return all;
}
