// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TenantEvents } from "./tenant-events.js";

describe("TenantEvents", () => {
  it("delivers events to their tenant's subscribers and to catch-all subscribers", () => {
    const events = new TenantEvents<string>();
    const a: string[] = [];
    const b: string[] = [];
    const all: string[] = [];
    const offA = events.subscribe("a", (e) => a.push(e));
    events.subscribe("b", (e) => b.push(e));
    events.subscribe(undefined, (e) => all.push(e));
    events.publish("a", "a1");
    events.publish("b", "b1");
    events.publish("c", "c1");
    assert.deepEqual(a, ["a1"]);
    assert.deepEqual(b, ["b1"]);
    assert.deepEqual(all, ["a1", "b1", "c1"]);
    assert.equal(events.subscriberCount, 3);
    offA();
    offA();
    events.publish("a", "a2");
    assert.deepEqual(a, ["a1"]);
    assert.equal(events.subscriberCount, 2);
  });

  it("keeps delivering when one subscriber throws", () => {
    const events = new TenantEvents<number>();
    const got: number[] = [];
    events.subscribe("t", () => {
      throw new Error("broken stream");
    });
    events.subscribe("t", (e) => got.push(e));
    events.publish("t", 1);
    assert.deepEqual(got, [1]);
  });
});
