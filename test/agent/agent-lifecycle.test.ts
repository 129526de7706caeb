// SPDX-License-Identifier: Apache-2.0
// The Agent class in process: lifecycle states, stop during registration, failed start.
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { createServer } from "node:net";
import { after, describe, it } from "node:test";
import { Agent } from "../../src/agent/agent.js";
import { loadAgentConfig } from "../../src/agent/agent-config.js";
import { IllegalStateError } from "../../src/shared/errors.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FakeAgentServer } from "../support/fake-agent-server.js";
import { prepareAgentDirs, randomInstanceId } from "./agent-process.js";

describe("Agent lifecycle", () => {
  const roots: string[] = [];
  after(async () => {
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("idle → registering → running → stopped, with a graceful health stream end", async () => {
    const server = await FakeAgentServer.create();
    await server.start();
    const id = randomInstanceId();
    const dirs = await prepareAgentDirs(server, {
      nonce: await server.mintNonce({ instanceId: id }),
    });
    roots.push(dirs.root);
    const agent = new Agent({
      config: loadAgentConfig({ ...dirs.env, NSTANCE_METRICS_INTERVAL: "200ms" }),
      logger: silentLogger,
      version: "1.2.3",
    });
    try {
      assert.equal(agent.state, "idle");
      await agent.start();
      assert.ok(["registering", "running"].includes(agent.state), agent.state);
      await assert.rejects(agent.start(), IllegalStateError);
      await server.waitFor("report", () => server.reportsFrom(id)[0]);
      assert.equal(agent.state, "running");
      assert.equal(agent.instanceId, id);
      await agent.stop();
      await agent.stop();
      assert.equal(agent.state, "stopped");
      assert.equal(server.healthStreams.find((s) => s.instanceId === id)?.end, "graceful");
    } finally {
      await agent.stop();
      await server.stop();
    }
  });

  it("stops promptly while registration is still retrying", async () => {
    const server = await FakeAgentServer.create();
    await server.start();
    const dirs = await prepareAgentDirs(server, {
      nonce: await server.mintNonce({ instanceId: randomInstanceId() }),
      registrationAddr: "localhost:1",
    });
    roots.push(dirs.root);
    await server.stop();
    const agent = new Agent({
      config: loadAgentConfig(dirs.env),
      logger: silentLogger,
      version: "1.2.3",
      registrationBackoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    await agent.start();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(agent.state, "registering");
    const t0 = Date.now();
    await agent.stop();
    assert.ok(Date.now() - t0 < 3_000, `stop took ${Date.now() - t0} ms`);
    assert.equal(agent.state, "stopped");
  });

  it("a start that cannot bind NSTANCE_HEALTH_ADDR rejects and leaves the agent stopped", async () => {
    const server = await FakeAgentServer.create();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    try {
      const port = (blocker.address() as { port: number }).port;
      const dirs = await prepareAgentDirs(server, {
        nonce: null,
        registrationAddr: "localhost:1",
        agentAddr: "localhost:1",
      });
      roots.push(dirs.root);
      const agent = new Agent({
        config: loadAgentConfig({ ...dirs.env, NSTANCE_HEALTH_ADDR: `127.0.0.1:${port}` }),
        logger: silentLogger,
        version: "1.2.3",
      });
      await assert.rejects(agent.start(), /EADDRINUSE/);
      assert.equal(agent.state, "stopped");
      await agent.stop();
    } finally {
      blocker.close();
    }
  });
});
