// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../../shared/errors.js";
import { EventQueue } from "./event-queue.js";
import { LatestStreamPerKey } from "./latest-stream.js";

describe("EventQueue", () => {
  it("hands events over in order, waiting when empty", async () => {
    const q = new EventQueue<number>();
    const signal = new AbortController().signal;
    const pending = q.next(signal);
    q.push(1);
    q.push(2);
    assert.equal(await pending, 1);
    assert.equal(await q.next(signal), 2);
  });

  it("rejects with the abort reason, and with resource_exhausted after an overflow", async () => {
    const ctl = new AbortController();
    const q = new EventQueue<number>({ capacity: 2 });
    const waiting = q.next(ctl.signal);
    ctl.abort(new Error("cancelled"));
    await assert.rejects(waiting, /cancelled/);
    const live = new AbortController().signal;
    for (const i of [1, 2, 3]) q.push(i);
    await assert.rejects(
      q.next(live),
      (err: unknown) => err instanceof NstanceError && err.code === "resource_exhausted",
    );
  });
});

describe("LatestStreamPerKey", () => {
  it("aborts the previous claim of a key with `aborted` and forgets released keys", () => {
    const streams = new LatestStreamPerKey("WatchGroups");
    const parent = new AbortController().signal;
    const a = streams.claim("t", parent);
    const b = streams.claim("t", parent);
    const other = streams.claim("u", parent);
    assert.equal(a.signal.aborted, true);
    assert.ok(a.signal.reason instanceof NstanceError && a.signal.reason.code === "aborted");
    assert.equal(b.signal.aborted, false);
    a.release(); // no effect: b holds the key
    assert.equal(streams.size, 2);
    b.release();
    other.release();
    assert.equal(streams.size, 0);
  });
});
