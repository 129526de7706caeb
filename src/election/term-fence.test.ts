// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage } from "../storage/memory-storage.js";
import { StaleTermError, TermFence, type TermSource } from "./term-fence.js";

/** A term source the test drives by hand. */
class ManualTerms implements TermSource {
  term = 0;
  #ctl = new AbortController();
  begin(term: number): void {
    this.term = term;
    this.#ctl = new AbortController();
  }
  end(): void {
    this.#ctl.abort(new Error("term ended"));
    this.term = 0;
  }
  isCurrentTerm(term: number): boolean {
    return term !== 0 && term === this.term;
  }
  termSignal(term: number): AbortSignal | undefined {
    return this.isCurrentTerm(term) ? this.#ctl.signal : undefined;
  }
}

describe("TermFence", () => {
  it("runs work of the current term with its signal and drops work of an old term", async () => {
    const terms = new ManualTerms();
    const fence = new TermFence({ source: terms });
    terms.begin(3);
    let seen: AbortSignal | undefined;
    assert.equal(
      await fence.run(3, async (signal) => {
        seen = signal;
        return "done";
      }),
      "done",
    );
    assert.equal(seen?.aborted, false);
    let ran = false;
    assert.equal(
      await fence.run(2, async () => {
        ran = true;
      }),
      undefined,
    );
    assert.equal(ran, false);
    assert.equal(fence.dropped, 1);
    terms.end();
    assert.equal(seen?.aborted, true);
    assert.equal(await fence.run(3, async () => "late"), undefined);
    assert.equal(fence.dropped, 2);
    assert.throws(() => fence.assertCurrent(3, "scale up web"), StaleTermError);
  });

  it("guards storage writes: refused once the term ends, aborted when it ends mid-flight", async () => {
    const terms = new ManualTerms();
    const fence = new TermFence({ source: terms });
    const storage = new MemoryStorage();
    terms.begin(1);
    const guarded = fence.guardStorage(storage, 1);
    await guarded.put("instance/a.json", "{}");
    assert.ok(await storage.get("instance/a.json"));

    // A write whose request is still in flight when the term ends is aborted.
    const slow = {
      ...storage,
      description: "slow",
      get: storage.get.bind(storage),
      head: storage.head.bind(storage),
      list: storage.list.bind(storage),
      delete: storage.delete.bind(storage),
      put: (_key: string, _body: Buffer | string, opts?: { signal?: AbortSignal }) =>
        new Promise<string>((_resolve, reject) => {
          opts?.signal?.addEventListener("abort", () => reject(opts.signal?.reason), {
            once: true,
          });
        }),
    };
    const inFlight = fence.guardStorage(slow, 1).put("instance/b.json", "{}");
    terms.end();
    await assert.rejects(inFlight, /term ended/);

    await assert.rejects(guarded.put("instance/c.json", "{}"), StaleTermError);
    await assert.rejects(guarded.delete("instance/a.json"), StaleTermError);
    assert.ok(await storage.get("instance/a.json"), "a stale delete must not reach storage");
    assert.equal(await storage.get("instance/c.json"), undefined);
    // Reads are not fenced.
    assert.ok(await guarded.get("instance/a.json"));
  });
});
