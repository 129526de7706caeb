// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "../shared/logger.js";
import { AgentHealthServer, parseListenAddr } from "./agent-health-server.js";

describe("AgentHealthServer", () => {
  it("answers GET and HEAD /healthz with 200 ok, other paths 404, other methods 405", async () => {
    const s = new AgentHealthServer({ addr: "127.0.0.1:0", logger: silentLogger });
    await s.start();
    try {
      const base = `http://${s.address}`;
      const get = await fetch(`${base}/healthz`);
      assert.equal(get.status, 200);
      assert.equal(await get.text(), "ok");
      const head = await fetch(`${base}/healthz?x=1`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/healthz`, { method: "POST" })).status, 405);
    } finally {
      await s.stop();
      await s.stop();
    }
    assert.equal(s.state, "stopped");
  });

  it("rejects start when the port is taken", async () => {
    const a = new AgentHealthServer({ addr: "127.0.0.1:0", logger: silentLogger });
    await a.start();
    const b = new AgentHealthServer({ addr: a.address, logger: silentLogger });
    try {
      await assert.rejects(b.start(), /EADDRINUSE/);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("parseListenAddr", () => {
  for (const [addr, want] of [
    ["127.0.0.1:8080", { host: "127.0.0.1", port: 8080 }],
    [":9000", { host: "0.0.0.0", port: 9000 }],
    ["[::1]:80", { host: "::1", port: 80 }],
  ] as const) {
    it(addr, () => assert.deepEqual(parseListenAddr(addr), want));
  }
  it("refuses a missing or bad port", () => {
    assert.throws(() => parseListenAddr("8080"), /want host:port/);
    assert.throws(() => parseListenAddr("h:70000"), /invalid port/);
  });
});
