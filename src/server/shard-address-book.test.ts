// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServerHeartbeat } from "./server-registry.js";
import { ShardAddressBook } from "./shard-address-book.js";

const beat = (id: string, port: number, stale = false): ServerHeartbeat & { stale: boolean } => ({
  id,
  shard: "s",
  version: "v",
  role: "standby",
  term: 0,
  addresses: { registration: `h${id}:${port}`, agent: `h${id}:${port + 1}` },
  started_at: "",
  updated_at: "",
  stale,
});

describe("ShardAddressBook", () => {
  it("lists this server first, then the live peers, without stale ones or duplicates", async () => {
    let beats = [beat("a", 10), beat("b", 20), beat("c", 30, true), beat("d", 10)];
    beats[3]!.addresses = { ...beats[0]!.addresses };
    const book = new ShardAddressBook({
      selfId: "a",
      own: { registration: "ha:10", agent: "ha:11", operator: "ha:12" },
      source: { list: async () => beats },
      intervalMs: 1000,
    });
    assert.equal(book.agent, "ha:11", "before a refresh only its own address");
    await book.refresh();
    assert.equal(book.agent, "ha:11,hb:21");
    assert.equal(book.registration, "ha:10,hb:20");
    assert.equal(book.operator, "ha:12");
    beats = [beat("a", 10)];
    await book.refresh();
    assert.equal(book.agent, "ha:11", "a server that left is dropped");
  });

  it("keeps the last list when storage fails", async () => {
    let fail = false;
    const book = new ShardAddressBook({
      selfId: "a",
      own: { registration: "ha:10", agent: "ha:11" },
      source: {
        list: async () => {
          if (fail) throw new Error("storage down");
          return [beat("b", 20)];
        },
      },
      intervalMs: 1000,
    });
    await book.refresh();
    fail = true;
    await assert.rejects(book.refresh(), /storage down/);
    assert.equal(book.agent, "ha:11,hb:21");
  });
});
