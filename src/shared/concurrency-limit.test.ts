// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConcurrencyLimit } from "./concurrency-limit.js";

const tick = () => new Promise((r) => setImmediate(r));

describe("ConcurrencyLimit", () => {
  it("runs at most `limit` tasks at once, the rest in arrival order", async () => {
    const limit = new ConcurrencyLimit(2);
    const started: number[] = [];
    const release: Array<() => void> = [];
    const tasks = [0, 1, 2, 3].map((i) =>
      limit.run(async () => {
        started.push(i);
        await new Promise<void>((r) => release.push(r));
        return i;
      }),
    );
    await tick();
    assert.deepEqual(started, [0, 1]);
    assert.equal(limit.waiting, 2);
    release[1]!();
    await tick();
    assert.deepEqual(started, [0, 1, 2]);
    release[0]!();
    await tick();
    assert.deepEqual(started, [0, 1, 2, 3]);
    release[2]!();
    release[3]!();
    assert.deepEqual(await Promise.all(tasks), [0, 1, 2, 3]);
    assert.equal(limit.running, 0);
  });

  it("drops a waiter whose signal aborts, without running it", async () => {
    const limit = new ConcurrencyLimit(1);
    let release!: () => void;
    const first = limit.run(() => new Promise<void>((r) => (release = r)));
    const ctl = new AbortController();
    let ran = false;
    const second = limit.run(async () => {
      ran = true;
    }, ctl.signal);
    await tick();
    ctl.abort(new Error("gave up"));
    await assert.rejects(second, /gave up/);
    assert.equal(limit.waiting, 0);
    release();
    await first;
    assert.equal(ran, false);
    assert.equal(limit.running, 0);
    // A failing task frees its slot too.
    await assert.rejects(
      limit.run(() => Promise.reject(new Error("x"))),
      /x/,
    );
    assert.equal(await limit.run(async () => 7), 7);
  });
});
