// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RingBuffer } from "./ring-buffer.js";

describe("RingBuffer", () => {
  it("keeps the newest items in order", () => {
    const b = new RingBuffer<number>(3);
    assert.deepEqual(b.toArray(), []);
    assert.equal(b.last(), undefined);
    for (let i = 1; i <= 7; i++) b.push(i);
    assert.deepEqual(b.toArray(), [5, 6, 7]);
    assert.equal(b.size, 3);
    assert.equal(b.last(), 7);
  });
  it("holds fewer than capacity without gaps", () => {
    const b = new RingBuffer<string>(4);
    b.push("a");
    b.push("b");
    assert.deepEqual(b.toArray(), ["a", "b"]);
    assert.equal(b.capacity, 4);
  });
  it("rejects a non-positive capacity", () => {
    assert.throws(() => new RingBuffer(0), RangeError);
    assert.throws(() => new RingBuffer(1.5), RangeError);
  });
});
