// SPDX-License-Identifier: Apache-2.0
// The agent's stream components in-process against the fake server: file patch edge cases, key
// requests, standby failover, and the graceful-close timeout.
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AgentChannel } from "../../src/agent/agent-channel.js";
import { FileReceiver } from "../../src/agent/file-receiver.js";
import { FileStream } from "../../src/agent/file-stream.js";
import { HealthReporter } from "../../src/agent/health-reporter.js";
import { IdentityDir } from "../../src/agent/identity-dir.js";
import { KeyRequestStream } from "../../src/agent/key-requests.js";
import { KeyStore } from "../../src/agent/key-store.js";
import { MetricsSampler } from "../../src/agent/metrics/metrics-sampler.js";
import { issueTestClientCertificate } from "../../src/pki/testing.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FakeAgentServer } from "../support/fake-agent-server.js";
import { randomInstanceId } from "./agent-process.js";

const FAST = { initialMs: 50, maxMs: 200, factor: 2 };

describe("agent streams (in process)", () => {
  let server: FakeAgentServer;
  let root: string;
  before(async () => {
    server = await FakeAgentServer.create();
    await server.start();
    root = await mkdtemp(join(tmpdir(), "nstance-streams-"));
  });
  after(async () => {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function channelFor(id: string, addrs = [server.agentAddr]): Promise<AgentChannel> {
    const cert = await issueTestClientCertificate(server.pki.ca, { clientId: id, role: "agent" });
    return new AgentChannel({
      addrs,
      caCertPem: server.pki.caCertPem,
      certificatePem: cert.certPem,
      privateKeyPem: cert.keyPem,
      logger: silentLogger,
    });
  }

  it("file stream: rejects commits without a hash and oversized patches, drops cut-off patches", async () => {
    const id = randomInstanceId();
    const dir = await mkdtemp(join(root, "files-"));
    const identity = new IdentityDir({ dir: join(dir, "identity"), logger: silentLogger });
    await identity.ensure();
    const recvDir = join(dir, "recv");
    const receiver = new FileReceiver({ recvDir, identity, logger: silentLogger });
    const channel = await channelFor(id);
    let outcomes = 0;
    const stream = new FileStream({
      channel,
      receiver,
      logger: silentLogger,
      maxPatchBytes: 1024,
      backoff: FAST,
      onPatch: () => outcomes++,
    });
    stream.start();
    try {
      await server.waitFor("file stream", () => server.fileStreamInstances().includes(id));

      server.sendFilePatch(id, [{ filename: "a.txt", content: "a" }], "");
      await server.waitFor("outcome 1", () => outcomes === 1);
      assert.match(stream.patchError ?? "", /commit message has no config hash/);

      server.sendFilePatch(
        id,
        [{ filename: "big.txt", content: Buffer.alloc(2048, 1) }],
        "sha256:big",
      );
      await server.waitFor("outcome 2", () => outcomes === 2);
      assert.match(stream.patchError ?? "", /2048 bytes exceeds the agent's limit of 1024/);

      // Files sent, then the stream ends before the commit: nothing may be written.
      const streamsBefore = server.fileStreamInstances().length;
      assert.equal(streamsBefore, 1);
      server.sendFilePatch(id, [{ filename: "cut.txt", content: "x" }], "sha256:never", {
        commit: false,
      });
      server.endServerStreams(id);
      await server.waitFor("reconnected", () => server.fileStreamInstances().includes(id), 5_000);

      server.sendFilePatch(id, [{ filename: "ok.txt", content: "fine" }], "sha256:ok");
      await server.waitFor("applied", () => stream.patchesApplied === 1);
      assert.equal(stream.patchError, undefined);
      assert.equal(await readFile(join(recvDir, "ok.txt"), "utf8"), "fine");
      assert.equal(await identity.readConfigHash(), "sha256:ok");
      const names = await readdir(recvDir);
      for (const n of ["a.txt", "big.txt", "cut.txt"]) assert.ok(!names.includes(n), n);
    } finally {
      await stream.stop();
      channel.close();
    }
  });

  it("key requests: skips an unsafe name, submits the rest, retries while the server refuses", async () => {
    const id = randomInstanceId();
    const dir = await mkdtemp(join(root, "keys-"));
    const keyStore = new KeyStore({
      keysDir: join(dir, "keys"),
      identityDir: join(dir, "identity"),
      logger: silentLogger,
    });
    const channel = await channelFor(id);
    const stream = new KeyRequestStream({
      channel,
      instanceId: id,
      keyStore,
      logger: silentLogger,
      backoff: FAST,
    });
    stream.start();
    try {
      await server.waitFor("key stream", () => server.keyStreamInstances().includes(id));
      server.setRole("standby");
      server.sendKeyRequest(id, ["../escape", "etcd.peer", "etcd.peer"]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(server.keySubmissions.filter((s) => s.instanceId === id).length, 0);
      server.setRole("leader");
      const sub = await server.waitFor("submission", () =>
        server.keySubmissions.find((s) => s.instanceId === id),
      );
      assert.deepEqual(
        sub.keys.map((k) => k.filename),
        ["etcd.peer.pub"],
      );
      assert.deepEqual((await readdir(join(dir, "keys"))).sort(), [
        "etcd.peer.key",
        "etcd.peer.pub",
      ]);
      await server.waitFor("acknowledged", () => stream.submitted === 1);
    } finally {
      server.setRole("leader");
      await stream.stop();
      channel.close();
    }
  });

  it("health reporter: moves from a standby to the leader, and cancels when a half-close is not answered", async () => {
    const standby = await FakeAgentServer.create({
      pki: server.pki,
      nonceKey: server.nonceKey,
      role: "standby",
    });
    await standby.start();
    const id = randomInstanceId();
    const dir = await mkdtemp(join(root, "health-"));
    const identity = new IdentityDir({ dir: join(dir, "identity"), logger: silentLogger });
    await identity.ensure();
    await identity.writeConfigHash("sha256:h");
    const metrics = new MetricsSampler({ logger: silentLogger });
    await metrics.start();
    const channel = await channelFor(id, [standby.agentAddr, server.agentAddr]);
    const reporter = new HealthReporter({
      channel,
      instanceId: id,
      version: "9.9.9",
      intervalMs: 100,
      sources: {
        metrics,
        recvDir: join(dir, "recv"),
        identity,
        patchError: () => undefined,
      },
      logger: silentLogger,
      backoff: FAST,
      gracefulCloseTimeoutMs: 300,
    });
    reporter.start();
    try {
      const first = await server.waitFor("report at the leader", () => server.reportsFrom(id)[0]);
      assert.equal(first.version, "9.9.9");
      assert.equal(first.configHash, "sha256:h");
      assert.equal(channel.addr, server.agentAddr);
      assert.equal(standby.reports.length, 0);

      server.setAnswerHalfClose(false);
      const t0 = Date.now();
      await reporter.stop();
      const tookMs = Date.now() - t0;
      assert.ok(tookMs >= 250 && tookMs < 5_000, `stop took ${tookMs} ms`);
      assert.equal(reporter.state, "stopped");
      const rec = server.healthStreams.find((s) => s.instanceId === id);
      assert.equal(rec?.end, "graceful", "the half-close itself reached the server");
    } finally {
      server.setAnswerHalfClose(true);
      await reporter.stop();
      await metrics.stop();
      channel.close();
      await standby.stop();
    }
  });
});
