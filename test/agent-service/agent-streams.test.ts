// SPDX-License-Identifier: Apache-2.0
/**
 * How health streams end and what they cannot break: graceful half-close vs cancel vs a killed
 * agent process, one stream per instance, malformed and oversized messages that end only their own
 * stream, and load-balancer registration driven by reports.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { AgentServiceService, type FileTransfer } from "../../src/protocol/gen/nstance/v1/agent.js";
import type { LbTargetRequest, LbTargetState } from "../../src/providers/provider.js";
import { listLbInstances } from "../../src/server/agent-service/lb-registration.js";
import {
  type AgentFixture,
  Collected,
  openHealthStream,
  report,
  startAgentFixture,
  WAIT_MS,
  waitFor,
} from "./agent-fixture.js";

const decisionsOf = (fx: AgentFixture, id: string) =>
  fx.db
    .prepare("SELECT decision, reason FROM decisions WHERE instance_id = ? ORDER BY seq")
    .all(id)
    .map((r) => ({ ...(r as object) }));

describe("agent health streams", () => {
  let fx: AgentFixture;
  before(async () => {
    fx = await startAgentFixture();
  });
  after(async () => {
    await fx.close();
  });

  it("classifies a half-close as graceful and a cancel as lost, and records both", async () => {
    fx.addInstance("webgraceful01");
    fx.addInstance("webcancel0001");
    const graceful = openHealthStream(fx.client(await fx.agentCert("webgraceful01")));
    const cancelled = openHealthStream(fx.client(await fx.agentCert("webcancel0001")));
    graceful.call.write(report("webgraceful01"));
    cancelled.call.write(report("webcancel0001"));
    await waitFor(
      "both connected",
      () =>
        fx.agents.connections.get("webcancel0001")?.reports === 1 &&
        fx.agents.connections.get("webgraceful01")?.reports === 1,
    );

    graceful.call.end();
    assert.equal(await graceful.done, null);
    cancelled.call.cancel();
    assert.equal((await cancelled.done)?.code, status.CANCELLED);

    const g = await waitFor("graceful event", () =>
      fx.disconnects.find((d) => d.instanceId === "webgraceful01"),
    );
    const l = await waitFor("lost event", () =>
      fx.disconnects.find((d) => d.instanceId === "webcancel0001"),
    );
    assert.equal(g.kind, "graceful");
    assert.equal(l.kind, "lost");
    assert.deepEqual(decisionsOf(fx, "webgraceful01"), [
      { decision: "agent_disconnected", reason: "graceful" },
    ]);
    assert.deepEqual(decisionsOf(fx, "webcancel0001"), [
      { decision: "agent_disconnected", reason: "lost" },
    ]);
    assert.equal(fx.agents.connections.get("webgraceful01"), undefined);
    assert.equal(fx.agents.connections.get("webcancel0001"), undefined);
  });

  it("sees a killed agent process (SIGKILL) as lost", async () => {
    const id = "webkilled0001";
    fx.addInstance(id);
    const cert = await fx.agentCert(id);
    const port = fx.servers.addresses.agent.slice(fx.servers.addresses.agent.lastIndexOf(":") + 1);
    const child = spawn(
      process.execPath,
      ["--import", "tsx", new URL("./health-stream-child.ts", import.meta.url).pathname],
      {
        env: {
          ...process.env,
          AGENT_ADDR: `localhost:${port}`,
          AGENT_CA_PEM: fx.identity.ca.certPem,
          AGENT_CERT_PEM: cert.certPem,
          AGENT_KEY_PEM: cert.keyPem,
          AGENT_INSTANCE_ID: id,
        },
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    try {
      await waitFor(
        "the child's report",
        () => fx.agents.connections.get(id)?.reports === 1,
        30_000,
      );
      child.kill("SIGKILL");
      const e = await waitFor(
        "the disconnect",
        () => fx.disconnects.find((d) => d.instanceId === id),
        30_000,
      );
      assert.equal(e.kind, "lost");
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("keeps only the newest health stream of an instance, without a disconnect event for the old one", async () => {
    const id = "webtwostream1";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const first = openHealthStream(client);
    first.call.write(report(id));
    await waitFor("first stream reporting", () => fx.agents.connections.get(id)?.reports === 1);
    const second = openHealthStream(client);
    second.call.write(report(id, { count: 2 }));
    const err = await first.done;
    assert.equal(err?.code, status.ABORTED);
    await waitFor(
      "second stream reporting",
      () => fx.agents.connections.get(id)?.reports === 1 && fx.agents.connections.get(id),
    );
    assert.equal(fx.disconnects.filter((d) => d.instanceId === id).length, 0);
    second.call.end();
    await second.done;
    assert.deepEqual(
      fx.disconnects.filter((d) => d.instanceId === id).map((d) => d.kind),
      ["graceful"],
    );
  });

  it("ends only the sender's stream on an undecodable or oversized message", async () => {
    fx.addInstance("webbystander1");
    fx.addInstance("webgarbage001");
    fx.addInstance("webhuge000001");
    const bystander = openHealthStream(fx.client(await fx.agentCert("webbystander1")));
    bystander.call.write(report("webbystander1", { count: 1 }));
    await waitFor(
      "bystander reporting",
      () => fx.agents.connections.get("webbystander1")?.reports === 1,
    );

    const raw = async (id: string, body: Buffer): Promise<ServiceError | null> => {
      const client = fx.client(await fx.agentCert(id));
      const def = AgentServiceService.submitHealthReport;
      return new Promise((resolve) => {
        const stream = client.makeClientStreamRequest(
          def.path,
          (b: Buffer) => b,
          def.responseDeserialize,
          new Metadata(),
          { deadline: Date.now() + WAIT_MS },
          (err) => resolve(err),
        );
        stream.write(body);
      });
    };
    // Field 2 (instance_id) announced with length 100 but only 3 bytes follow.
    const garbage = await raw("webgarbage001", Buffer.from([0x12, 0x64, 0x61, 0x62, 0x63]));
    assert.equal(garbage?.code, status.INTERNAL);
    const huge = await raw("webhuge000001", Buffer.alloc(5 * 1024 * 1024, 0x41));
    assert.equal(huge?.code, status.RESOURCE_EXHAUSTED);

    bystander.call.write(report("webbystander1", { count: 2 }));
    await waitFor(
      "bystander's next report",
      () => fx.agents.connections.get("webbystander1")?.reports === 2,
    );
    const stored = await waitFor("stored", () => {
      const r = fx.db.prepare("SELECT health FROM instances WHERE id = ?").get("webbystander1") as {
        health: string | null;
      };
      const h = r.health ? (JSON.parse(r.health) as { count: number }) : undefined;
      return h?.count === 2 ? h : undefined;
    });
    assert.equal(stored.count, 2);
    bystander.call.end();
    assert.equal(await bystander.done, null, "the bystander's stream was never disturbed");
  });
});

/** A provider double with just the two LB calls, recording what it was asked. */
class RecordingLb {
  members = new Set<string>();
  registers = 0;
  failNext = 0;
  async getLbTargetState(req: LbTargetRequest): Promise<LbTargetState> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("elb: throttled");
    }
    return this.members.has(`${req.lbName}/${req.providerInstanceId}`) ? "healthy" : "deregistered";
  }
  async registerWithLb(req: LbTargetRequest): Promise<void> {
    this.registers++;
    this.members.add(`${req.lbName}/${req.providerInstanceId}`);
  }
}

describe("load balancer registration", () => {
  let fx: AgentFixture;
  const lb = new RecordingLb();
  before(async () => {
    fx = await startAgentFixture({
      lbProvider: lb,
      configEdits: [
        [["load_balancers"], { "web-lb": { provider: "local" } }],
        [["groups", "default", "web", "load_balancers"], ["web-lb"]],
      ],
    });
  });
  after(async () => {
    await fx.close();
  });

  it("registers on the first report, then leaves registered targets alone", async () => {
    const id = "weblb00000001";
    fx.addInstance(id, { providerId: "p-1" });
    const s = openHealthStream(fx.client(await fx.agentCert(id)));
    s.call.write(report(id));
    await waitFor("registered", () => listLbInstances(fx.db, id)[0]?.status === "registered");
    assert.equal(lb.registers, 1);
    assert.ok(lb.members.has("web-lb/p-1"));
    s.call.write(report(id, { count: 2 }));
    s.call.write(report(id, { count: 3 }));
    await waitFor("three reports", () => fx.agents.connections.get(id)?.reports === 3);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(lb.registers, 1);
    s.call.end();
    await s.done;
  });

  it("marks a failed registration and retries it at the next report", async () => {
    const id = "weblb00000002";
    fx.addInstance(id, { providerId: "p-2" });
    lb.failNext = 1;
    const s = openHealthStream(fx.client(await fx.agentCert(id)));
    s.call.write(report(id));
    const failed = await waitFor("failed", () =>
      listLbInstances(fx.db, id).find((r) => r.status === "failed"),
    );
    assert.match(failed.lastError ?? "", /throttled/);
    s.call.write(report(id, { count: 2 }));
    await waitFor("registered", () => listLbInstances(fx.db, id)[0]?.status === "registered");
    assert.ok(lb.members.has("web-lb/p-2"));
    s.call.end();
    await s.done;
  });

  it("does not register a draining instance", async () => {
    const id = "weblb00000003";
    fx.addInstance(id, { providerId: "p-3" });
    fx.db.prepare("UPDATE instances SET drain_started_at = ? WHERE id = ?").run(Date.now(), id);
    const s = openHealthStream(fx.client(await fx.agentCert(id)));
    s.call.write(report(id));
    await waitFor("stored", () => fx.agents.connections.get(id)?.reports === 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(listLbInstances(fx.db, id), []);
    assert.ok(!lb.members.has("web-lb/p-3"));
    s.call.end();
    await s.done;
  });
});

describe("agent service shutdown", () => {
  it("ends open streams with UNAVAILABLE and raises no disconnect event", async () => {
    const fx = await startAgentFixture();
    try {
      const id = "webshutdown01";
      fx.addInstance(id);
      const client = fx.client(await fx.agentCert(id));
      const health = openHealthStream(client);
      health.call.write(report(id));
      const files = new Collected<FileTransfer>(client.receiveFiles({}));
      await waitFor("reporting", () => fx.agents.connections.get(id)?.reports === 1);
      await waitFor("the first patch", () => files.messages.length > 0);
      await fx.agents.stop();
      assert.equal((await health.done)?.code, status.UNAVAILABLE);
      await waitFor("the files stream to end", () => files.error);
      assert.equal(files.error?.code, status.UNAVAILABLE);
      assert.deepEqual(fx.disconnects, []);
      assert.equal(fx.agents.connections.size, 0);
    } finally {
      await fx.close();
    }
  });
});
