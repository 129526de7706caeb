// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { KeyMutex } from "./key-mutex.js";

describe("KeyMutex", () => {
  it("runs holders of one key one at a time, in arrival order", async () => {
    const m = new KeyMutex();
    const log: string[] = [];
    let inside = 0;
    await Promise.all(
      [0, 1, 2, 3].map((i) =>
        m.run("k", async () => {
          inside++;
          assert.equal(inside, 1, "one holder at a time");
          log.push(`start ${i}`);
          await delay(5);
          log.push(`end ${i}`);
          inside--;
        }),
      ),
    );
    assert.deepEqual(log, [
      "start 0",
      "end 0",
      "start 1",
      "end 1",
      "start 2",
      "end 2",
      "start 3",
      "end 3",
    ]);
    assert.equal(m.size, 0, "idle keys are forgotten");
  });

  it("lets different keys run at the same time", async () => {
    const m = new KeyMutex();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const a = m.run("a", () => gate);
    // "b" must not wait for "a".
    assert.equal(await m.run("b", async () => "b done"), "b done");
    release();
    await a;
  });

  it("releases the key when the holder throws", async () => {
    const m = new KeyMutex();
    await assert.rejects(
      m.run("k", async () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(await m.run("k", async () => 42), 42);
  });

  it("an aborted waiter gives up without breaking the queue", async () => {
    const m = new KeyMutex();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let holderDone = false;
    const holder = m.run("k", async () => {
      await gate;
      holderDone = true;
    });
    const ctl = new AbortController();
    let ran = false;
    const waiter = m.run(
      "k",
      async () => {
        ran = true;
      },
      ctl.signal,
    );
    ctl.abort(new Error("gave up"));
    await assert.rejects(waiter, /gave up/);
    // A newcomer still waits for the running holder.
    const third = m.run("k", async () => holderDone);
    release();
    await holder;
    assert.equal(await third, true);
    assert.equal(ran, false);
  });
});
