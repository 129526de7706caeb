// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chooseProxmoxNode, type ProxmoxNodeLoad, rankProxmoxNodes } from "./choose-node.js";

const GiB = 1024 ** 3;

function node(
  name: string,
  memUsed: number,
  cpu: number,
  over: Partial<ProxmoxNodeLoad> = {},
): ProxmoxNodeLoad {
  return {
    node: name,
    status: "online",
    cpu,
    maxcpu: 8,
    mem: memUsed * GiB,
    maxmem: 64 * GiB,
    ...over,
  };
}

describe("chooseProxmoxNode (TOPSIS: free memory 0.6, free CPU 0.4)", () => {
  const cases: Array<[string, ProxmoxNodeLoad[], string | undefined]> = [
    ["no nodes", [], undefined],
    ["only offline nodes", [node("a", 1, 0.1, { status: "offline" })], undefined],
    ["a node without capacity figures", [node("a", 1, 0.1, { maxmem: 0 })], undefined],
    ["the single online node", [node("a", 60, 0.9), node("b", 1, 0.1, { status: "offline" })], "a"],
    ["more free memory and CPU wins", [node("a", 48, 0.8), node("b", 16, 0.2)], "b"],
    // a: 25% mem free, 90% CPU free; b: 75% mem free, 10% CPU free → memory weighs more.
    ["memory outweighs CPU", [node("a", 48, 0.1), node("b", 16, 0.9)], "b"],
    // a: 50% mem free, 10% CPU free; b: 45% mem free, 90% CPU free → a big CPU gap beats a small memory gap.
    ["a large CPU gap beats a small memory gap", [node("a", 32, 0.9), node("b", 35.2, 0.1)], "b"],
    ["ties break by name", [node("b", 16, 0.2), node("a", 16, 0.2)], "a"],
  ];
  for (const [name, nodes, want] of cases) {
    it(name, () => assert.equal(chooseProxmoxNode(nodes), want));
  }

  it("scores between 0 and 1, best first", () => {
    const ranked = rankProxmoxNodes([node("a", 60, 0.9), node("b", 32, 0.5), node("c", 4, 0.05)]);
    assert.deepEqual(
      ranked.map((r) => r.node),
      ["c", "b", "a"],
    );
    assert.ok(ranked[0]!.score > ranked[1]!.score && ranked[1]!.score > ranked[2]!.score);
    assert.equal(ranked[0]!.score, 1);
    assert.equal(ranked[2]!.score, 0);
  });
});
