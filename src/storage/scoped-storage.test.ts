// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MemoryStorage } from "./memory-storage.js";
import { ScopedStorage } from "./scoped-storage.js";

describe("ScopedStorage", () => {
  it("prefixes keys on the way in and strips them from listings", async () => {
    const inner = new MemoryStorage();
    const shard = new ScopedStorage({ storage: inner, prefix: "shard/us-west-2a/" });
    const etag = await shard.put("leader.json", "{}");
    await shard.put("instance/a.json", "a");
    await inner.put("shard/us-east-1b/leader.json", "other shard");
    assert.equal((await inner.get("shard/us-west-2a/leader.json"))?.etag, etag);
    assert.equal((await shard.head("leader.json"))?.key, "leader.json");
    assert.deepEqual(
      (await shard.list("")).map((o) => o.key),
      ["instance/a.json", "leader.json"],
    );
    assert.deepEqual(
      (await shard.list("instance/")).map((o) => o.key),
      ["instance/a.json"],
    );
    await shard.delete("leader.json");
    assert.equal(await inner.get("shard/us-west-2a/leader.json"), undefined);
    assert.equal(shard.description, "memory:default/shard/us-west-2a/");
  });

  it("nests scopes", async () => {
    const inner = new MemoryStorage();
    const instances = new ScopedStorage({ storage: inner, prefix: "shard/x/" }).scope("instance/");
    await instances.put("a.json", "a");
    assert.ok(await inner.get("shard/x/instance/a.json"));
    assert.deepEqual(
      (await instances.list("")).map((o) => o.key),
      ["a.json"],
    );
  });

  it("rejects keys that would escape the scope", async () => {
    const shard = new ScopedStorage({ storage: new MemoryStorage(), prefix: "shard/x/" });
    await assert.rejects(shard.get("../y/leader.json"), /invalid object key/);
    await assert.rejects(shard.put("", "x"), /invalid object key/);
    assert.throws(() => new ScopedStorage({ storage: new MemoryStorage(), prefix: "/abs/" }));
  });
});
