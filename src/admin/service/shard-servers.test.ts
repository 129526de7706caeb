// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../../shared/errors.js";
import { formatServers, parseServers, selectShards, shardAddresses } from "./shard-servers.js";

describe("parseServers", () => {
  it("parses shard=host:port entries in order, ignoring spaces and blank entries", () => {
    assert.deepEqual(
      parseServers(" us-west-2a=10.0.0.1:8993, ,us-west-2b = nstance-b.internal:8993,"),
      [
        { shard: "us-west-2a", address: "10.0.0.1:8993", addresses: ["10.0.0.1:8993"] },
        {
          shard: "us-west-2b",
          address: "nstance-b.internal:8993",
          addresses: ["nstance-b.internal:8993"],
        },
      ],
    );
  });

  it("collects a shard listed more than once into its HA set, first address first", () => {
    const servers = parseServers("a=h1:1,b=h3:3,a=h2:1");
    assert.deepEqual(servers, [
      { shard: "a", address: "h1:1", addresses: ["h1:1", "h2:1"] },
      { shard: "b", address: "h3:3", addresses: ["h3:3"] },
    ]);
    assert.equal(formatServers(servers), "a=h1:1,a=h2:1,b=h3:3");
  });

  it("accepts bracketed IPv6 addresses", () => {
    assert.deepEqual(parseServers("s1=[::1]:8993"), [
      { shard: "s1", address: "[::1]:8993", addresses: ["[::1]:8993"] },
    ]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ["empty", "", /no servers given/],
    ["only commas", " , ,", /no servers given/],
    ["no equals sign", "localhost:8993", /"localhost:8993" is not shard=host:port/],
    ["empty shard", "=localhost:8993", /shard ID must not be empty/],
    ["uppercase shard", "US=localhost:8993", /shard ID must contain only lowercase/],
    ["no port", "s1=localhost", /address must be host:port/],
    ["port zero", "s1=localhost:0", /non-zero port/],
    ["port too big", "s1=localhost:70000", /address must be host:port/],
    ["no host", "s1=:8993", /with a host/],
    ["duplicate address of a shard", "s1=a:1,s1=b:2,s1=a:1", /s1=a:1 is listed twice/],
  ];
  for (const [name, text, message] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => parseServers(text),
        (err: unknown) =>
          err instanceof NstanceError &&
          err.code === "invalid_argument" &&
          message.test(err.message),
      );
    });
  }
});

describe("shardAddresses", () => {
  it("is the HA set, or the one address of a server built without one", () => {
    assert.deepEqual(shardAddresses({ shard: "a", address: "h1:1", addresses: ["h1:1", "h2:1"] }), [
      "h1:1",
      "h2:1",
    ]);
    assert.deepEqual(shardAddresses({ shard: "a", address: "h1:1" }), ["h1:1"]);
  });
});

describe("selectShards", () => {
  const servers = parseServers("a=h1:1,b=h2:2,c=h3:3");

  it("selects one shard", () => {
    assert.deepEqual(selectShards(servers, { shard: "b" }), [
      { shard: "b", address: "h2:2", addresses: ["h2:2"] },
    ]);
  });

  it("selects every shard in list order", () => {
    assert.deepEqual(
      selectShards(servers, { allShards: true }).map((s) => s.shard),
      ["a", "b", "c"],
    );
  });

  it("rejects a shard that is not in the list, naming the known ones", () => {
    assert.throws(
      () => selectShards(servers, { shard: "z" }),
      /shard z is not in the server list \(known: a, b, c\)/,
    );
  });
});
