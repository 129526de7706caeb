// SPDX-License-Identifier: Apache-2.0
// The real nstance-agent process against a real grpc-js fake server (registration, health stream,
// key requests, file patches, spot notices, reconnects, graceful vs crash disconnects).
import assert from "node:assert/strict";
import { createPublicKey, X509Certificate } from "node:crypto";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { HealthReportRequest } from "../../src/protocol/gen/nstance/v1/agent.js";
import { FakeAgentServer } from "../support/fake-agent-server.js";
import { MetadataServer } from "../support/metadata-server.js";
import { freePort } from "../support/server-process.js";
import {
  type AgentDirs,
  type AgentProcess,
  prepareAgentDirs,
  randomInstanceId,
  startAgentProcess,
} from "./agent-process.js";

/** Agent processes start through tsx; on a loaded 2-core machine that can take many seconds. */
const STARTUP_MS = 60_000;

const CONFIG_HASH = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A registered-and-reporting agent with its own fake server. */
async function startAgent(
  server: FakeAgentServer,
  opts: { env?: Record<string, string>; configHash?: string; registrationAddr?: string } = {},
): Promise<{ id: string; dirs: AgentDirs; agent: AgentProcess }> {
  const id = randomInstanceId();
  const nonce = await server.mintNonce({
    instanceId: id,
    configHash: opts.configHash ?? CONFIG_HASH,
  });
  const dirs = await prepareAgentDirs(server, { nonce, registrationAddr: opts.registrationAddr });
  roots.push(dirs.root);
  const agent = startAgentProcess({
    env: { ...dirs.env, ...opts.env },
    args: [`--instance-id=${id}`],
  });
  return { id, dirs, agent };
}

function fileStatus(report: HealthReportRequest, name: string): unknown {
  return report.files[name]?.status;
}

describe("nstance-agent process", { concurrency: 3 }, () => {
  describe("one agent, start to graceful stop", { concurrency: 1 }, () => {
    let server: FakeAgentServer;
    let metadata: MetadataServer;
    let id: string;
    let dirs: AgentDirs;
    let agent: AgentProcess;
    let healthPort: number;
    const newReport = async (
      what: string,
      pred: (r: HealthReportRequest) => boolean,
      timeoutMs = 30_000,
    ): Promise<HealthReportRequest> => {
      const seen = server.reports.length;
      return server
        .waitFor(
          what,
          () =>
            server.reports.slice(seen).find((r) => r.instanceId === id && pred(r.report))?.report,
          timeoutMs,
        )
        .catch((err: unknown) => {
          throw new Error(`${String(err)}${agent.recent()}`);
        });
    };

    before(async () => {
      server = await FakeAgentServer.create();
      await server.start();
      metadata = new MetadataServer({ cloud: "aws", spot: true });
      await metadata.start();
      healthPort = await freePort();
      ({ id, dirs, agent } = await startAgent(server, {
        env: {
          NSTANCE_PROVIDER: "aws",
          NSTANCE_METADATA_URL: metadata.url,
          NSTANCE_SPOT_POLL_INTERVAL: "200ms",
          NSTANCE_HEALTH_ADDR: `127.0.0.1:${healthPort}`,
        },
      }));
    });
    after(async () => {
      await agent.stop("SIGKILL");
      await server.stop();
      await metadata.stop();
    });

    it("registers: stores the certificate, deletes the nonce, records the config hash", async () => {
      const reg = await server
        .waitFor("registration", () => server.registrations[0], STARTUP_MS)
        .catch((err: unknown) => {
          throw new Error(`${String(err)}${agent.recent()}`);
        });
      assert.equal(reg.instanceId, id);
      assert.equal(reg.request.hostname, "agent-test-host");
      assert.equal(reg.request.privateIpv4, "10.1.2.3");
      // The submitted key is the public half of identity.key, and nothing private was sent.
      const keyPem = await readFile(join(dirs.identityDir, "identity.key"), "utf8");
      assert.equal(
        reg.request.publicKeyPem.toString(),
        createPublicKey(keyPem).export({ type: "spki", format: "pem" }).toString(),
      );
      assert.doesNotMatch(reg.request.publicKeyPem.toString(), /PRIVATE/);
      assert.equal((await stat(join(dirs.identityDir, "identity.key"))).mode & 0o777, 0o600);

      await server.waitFor("first report", () => server.reportsFrom(id)[0]);
      assert.equal(await exists(join(dirs.identityDir, "nonce.jwt")), false);
      const certPem = await readFile(join(dirs.identityDir, "identity.crt"), "utf8");
      assert.equal(certPem, reg.certificatePem);
      assert.match(new X509Certificate(certPem).subject, new RegExp(`CN=${id}`));
      assert.equal(
        (await readFile(join(dirs.identityDir, "config.hash"), "utf8")).trim(),
        CONFIG_HASH,
      );
    });

    it("streams health reports with the seed's fields and real machine metrics", async () => {
      const reports = await server.waitFor("three reports", () => {
        const r = server.reportsFrom(id);
        return r.length >= 3 ? r : undefined;
      });
      const [a, b, c] = reports as [HealthReportRequest, HealthReportRequest, HealthReportRequest];
      assert.deepEqual([a.count, b.count, c.count], [1, 2, 3], "count numbers the reports from 1");
      for (const r of [a, b, c]) {
        assert.equal(r.instanceId, id);
        assert.match(r.version, /^\d+\.\d+\.\d+/);
        assert.equal(r.configHash, CONFIG_HASH);
        assert.equal(r.patchError, "");
        assert.ok(r.timestamp && r.started && r.windowStart && r.windowEnd);
        assert.ok(r.windowStart.getTime() <= r.windowEnd.getTime());
        assert.ok(r.started.getTime() <= r.timestamp.getTime());
        assert.ok(r.uptime > 0, "host uptime in seconds");
        for (const w of [r.oneMinute, r.fiveMinutes, r.fifteenMinutes]) {
          assert.ok(w, "all three windows present");
          assert.ok(w.memoryUsage > 0 && w.memoryUsage <= 100, `memory ${w.memoryUsage}`);
          assert.ok(w.diskUsed > 0 && w.diskUsed <= 100, `disk ${w.diskUsed}`);
          assert.ok(w.cpuUsage >= 0 && w.cpuUsage <= 100);
        }
      }
      // NSTANCE_METRICS_INTERVAL=1s: reports about a second apart (generous bounds).
      const gapMs = c.timestamp!.getTime() - b.timestamp!.getTime();
      assert.ok(gapMs >= 800 && gapMs < 5_000, `gap ${gapMs} ms`);
      // One persistent stream carries them all.
      assert.equal(server.healthStreams.filter((s) => s.instanceId === id).length, 1);
    });

    it("serves /healthz on NSTANCE_HEALTH_ADDR", async () => {
      const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "ok");
      assert.equal((await fetch(`http://127.0.0.1:${healthPort}/nope`)).status, 404);
    });

    it("generates a requested key locally and submits only its public key", async () => {
      await server.waitFor("key stream", () => server.keyStreamInstances().includes(id));
      assert.equal(server.sendKeyRequest(id, ["kubelet.server"]), 1);
      const sub = await server.waitFor("key submission", () =>
        server.keySubmissions.find((s) => s.instanceId === id),
      );
      assert.equal(sub.keys.length, 1);
      assert.equal(sub.keys[0]!.filename, "kubelet.server.pub");
      const keyPath = join(dirs.keysDir, "kubelet.server.key");
      const privatePem = await readFile(keyPath, "utf8");
      assert.equal(
        sub.keys[0]!.publicKeyPem,
        createPublicKey(privatePem).export({ type: "spki", format: "pem" }).toString(),
      );
      assert.doesNotMatch(sub.keys[0]!.publicKeyPem, /PRIVATE/);
      assert.equal((await stat(keyPath)).mode & 0o777, 0o640);
    });

    it("writes a file patch with exact contents and reports it back", async () => {
      await server.waitFor("file stream", () => server.fileStreamInstances().includes(id));
      const mtime = new Date("2025-06-01T12:00:00Z");
      const binary = Buffer.from([0, 1, 2, 250, 255, 10]);
      const hash = "sha256:patch-1";
      const sent = server.sendFilePatch(
        id,
        [
          { filename: "app.env", content: "A=1\nB=two words\n", lastModified: mtime },
          { filename: "settings.json", content: '{"x":[1,2]}' },
          { filename: "blob.bin", content: binary },
          { filename: "empty.txt", content: "" },
        ],
        hash,
      );
      assert.equal(sent, 1);
      const report = await newReport("report with the patch", (r) => r.configHash === hash);
      assert.equal(await readFile(join(dirs.recvDir, "app.env"), "utf8"), "A=1\nB=two words\n");
      assert.equal(await readFile(join(dirs.recvDir, "settings.json"), "utf8"), '{"x":[1,2]}');
      assert.deepEqual(await readFile(join(dirs.recvDir, "blob.bin")), binary);
      assert.equal((await stat(join(dirs.recvDir, "app.env"))).mode & 0o777, 0o640);
      assert.equal((await readFile(join(dirs.identityDir, "config.hash"), "utf8")).trim(), hash);
      assert.deepEqual(fileStatus(report, "app.env"), { $case: "lastModified", value: mtime });
      assert.equal(
        (fileStatus(report, "settings.json") as { $case: string }).$case,
        "lastModified",
      );
      assert.deepEqual(fileStatus(report, "empty.txt"), { $case: "empty", value: true });
      assert.equal(report.patchError, "");
    });

    it("rejects an invalid patch whole and reports the reason", async () => {
      const sent = server.sendFilePatch(
        id,
        [
          { filename: "new.env", content: "GOOD=1\n" },
          { filename: "broken.json", content: "{not json" },
          { filename: "app.env", content: "A=changed\n" },
        ],
        "sha256:patch-bad",
      );
      assert.equal(sent, 1);
      const report = await newReport("report with patch_error", (r) => r.patchError !== "");
      assert.match(report.patchError, /broken\.json/);
      const broken = fileStatus(report, "broken.json") as { $case: string; value: string };
      assert.equal(broken.$case, "error");
      assert.match(broken.value, /JSON/i);
      // Nothing of the patch was written, and the config hash did not move.
      assert.equal(await exists(join(dirs.recvDir, "new.env")), false);
      assert.equal(await readFile(join(dirs.recvDir, "app.env"), "utf8"), "A=1\nB=two words\n");
      assert.equal(report.configHash, "sha256:patch-1");

      // A corrected patch clears both the patch error and the file's error.
      server.sendFilePatch(id, [{ filename: "broken.json", content: "{}" }], "sha256:patch-2");
      const fixed = await newReport(
        "report after the fix",
        (r) => r.configHash === "sha256:patch-2",
      );
      assert.equal(fixed.patchError, "");
      assert.equal((fileStatus(fixed, "broken.json") as { $case: string }).$case, "lastModified");
    });

    it("includes a spot termination notice from the metadata service in every report", async () => {
      assert.equal(server.reportsFrom(id).at(-1)?.terminationNotice, undefined);
      metadata.setNotice({ action: "terminate", time: "2030-01-02T03:04:05Z" });
      const r1 = await newReport("report with notice", (r) => r.terminationNotice !== undefined);
      assert.deepEqual(r1.terminationNotice, {
        action: "terminate",
        deadline: new Date("2030-01-02T03:04:05Z"),
      });
      const r2 = await newReport("next report", (r) => r.count > r1.count);
      assert.equal(r2.terminationNotice?.action, "terminate");
    });

    it("on SIGTERM half-closes the health stream: the server sees a graceful end", async () => {
      const code = await agent.stop("SIGTERM");
      assert.equal(code, 0, agent.recent());
      const streams = server.healthStreams.filter((s) => s.instanceId === id);
      assert.equal(streams.length, 1);
      assert.equal(streams[0]!.end, "graceful");
    });
  });

  it("kill -9: the server sees a cancelled stream, not a graceful end", async (t) => {
    const server = await FakeAgentServer.create();
    await server.start();
    const { id, agent } = await startAgent(server);
    try {
      await server.waitFor("two reports", () => server.reportsFrom(id).length >= 2, STARTUP_MS);
      const killedAt = Date.now();
      assert.equal(await agent.stop("SIGKILL"), "SIGKILL");
      const rec = await server.waitFor("stream end", () =>
        server.healthStreams.find((s) => s.instanceId === id && s.end !== "open"),
      );
      assert.equal(rec.end, "cancelled");
      t.diagnostic(`server saw the end ${rec.endedAtMs! - killedAt} ms after SIGKILL`);
    } finally {
      await agent.stop("SIGKILL");
      await server.stop();
    }
  });

  it("reconnects with backoff after the server restarts (first retry after >= 5 s) and resumes", async (t) => {
    const server = await FakeAgentServer.create();
    await server.start();
    const { id, dirs, agent } = await startAgent(server);
    try {
      await server.waitFor("reports", () => server.reportsFrom(id).length >= 2, STARTUP_MS);
      await server.waitFor("file stream", () => server.fileStreamInstances().includes(id));
      const before = server.reportsFrom(id).length;
      const stoppedAt = Date.now();
      await server.stop();
      await new Promise((r) => setTimeout(r, 500));
      await server.start();
      const second = await server.waitFor(
        "second health stream",
        () => server.healthStreams.filter((s) => s.instanceId === id)[1],
        STARTUP_MS,
      );
      const retryMs = second.openedAtMs - stoppedAt;
      t.diagnostic(`health stream reopened ${retryMs} ms after the server went down`);
      assert.ok(retryMs >= 5_000, `reconnected after ${retryMs} ms; backoff starts at 5 s`);
      assert.ok(retryMs < 40_000, `reconnected after ${retryMs} ms`);
      await agent.waitLog((l) => l.msg === "Stream failed; reconnecting" && l.stream === "health");
      // Reports resume with a continuing count, and the other streams are back too.
      const resumed = await server.waitFor("resumed report", () =>
        server.reports.find((r) => r.instanceId === id && r.streamId === second.id),
      );
      assert.ok(resumed.report.count > before);
      await server.waitFor("file stream back", () => server.fileStreamInstances().includes(id));
      server.sendFilePatch(id, [{ filename: "after-restart.txt", content: "hi" }], "sha256:r");
      await server.waitFor("patched", () =>
        server.reportsFrom(id).find((r) => r.configHash === "sha256:r"),
      );
      assert.equal(await readFile(join(dirs.recvDir, "after-restart.txt"), "utf8"), "hi");
      assert.equal(server.registrations.length, 1, "no second registration");
    } finally {
      await agent.stop("SIGKILL");
      await server.stop();
    }
  });

  it("registers through the leader when a standby is listed first; a restart reuses the identity", async () => {
    const leader = await FakeAgentServer.create();
    const standby = await FakeAgentServer.create({
      pki: leader.pki,
      nonceKey: leader.nonceKey,
      role: "standby",
    });
    await leader.start();
    await standby.start();
    const first = await startAgent(leader, {
      registrationAddr: `${standby.registrationAddr},${leader.registrationAddr}`,
    });
    try {
      await leader.waitFor("report", () => leader.reportsFrom(first.id)[0], STARTUP_MS);
      assert.equal(standby.registrationAttempts.length, 1);
      assert.equal(standby.registrationAttempts[0]!.code, 9 /* FAILED_PRECONDITION */);
      assert.equal(leader.registrations.length, 1);
      assert.equal(await first.agent.stop("SIGTERM"), 0);

      // Same directories, no nonce any more: the stored certificate is used as is.
      const again = startAgentProcess({
        env: { ...first.dirs.env, NSTANCE_SERVER_REGISTRATION_ADDR: standby.registrationAddr },
      });
      try {
        await leader.waitFor(
          "report from the restarted agent",
          () => leader.healthStreams.filter((s) => s.instanceId === first.id).length === 2,
          STARTUP_MS,
        );
        await again.waitLog((l) => l.msg === "Using stored identity");
        assert.equal(leader.registrations.length, 1);
        assert.equal(standby.registrationAttempts.length, 1);
      } finally {
        await again.stop("SIGKILL");
      }
    } finally {
      await first.agent.stop("SIGKILL");
      await leader.stop();
      await standby.stop();
    }
  });

  it("an expired or rejected nonce is logged as an error and the agent waits instead of exiting", async () => {
    const server = await FakeAgentServer.create();
    await server.start();
    const other = await FakeAgentServer.create();
    const expired = await server.mintNonce({
      instanceId: randomInstanceId(),
      now: new Date(Date.now() - 7_200_000),
      ttlMs: 3_600_000,
    });
    const foreign = await other.mintNonce({ instanceId: randomInstanceId() });
    const agents: AgentProcess[] = [];
    try {
      for (const nonce of [expired, foreign]) {
        const dirs = await prepareAgentDirs(server, { nonce });
        roots.push(dirs.root);
        agents.push(startAgentProcess({ env: dirs.env }));
      }
      const [a, b] = agents as [AgentProcess, AgentProcess];
      const waiting = (l: Record<string, unknown>): boolean =>
        l.msg === "Cannot register; waiting for the problem to be fixed";
      const la = await a.waitLog(waiting, STARTUP_MS);
      assert.match(String(la.err), /expired at/);
      const lb = await b.waitLog(waiting, STARTUP_MS);
      assert.match(
        String(lb.err),
        /rejected the registration: registration nonce signature is invalid/,
      );
      assert.equal(lb.retry_in_ms, 60_000);
      assert.equal(lb.level, "error");
      // Only the foreign nonce reached the server: the expired one is refused locally.
      assert.equal(server.registrationAttempts.length, 1);
      assert.equal(server.registrationAttempts[0]!.code, 16 /* UNAUTHENTICATED */);
      // Neither leaks the nonce into its logs, and both are still running.
      for (const p of [a, b]) {
        assert.doesNotMatch(JSON.stringify(p.logs), /eyJ[A-Za-z0-9_-]{10,}\./);
        assert.equal(p.child.exitCode, null);
      }
    } finally {
      for (const p of agents) await p.stop("SIGKILL");
      await server.stop();
    }
  });

  it("exits 2 and names the variable on invalid configuration", async () => {
    const p = startAgentProcess({
      env: {
        NSTANCE_SERVER_REGISTRATION_ADDR: "",
        NSTANCE_SERVER_AGENT_ADDR: "localhost:99999",
        NSTANCE_METRICS_INTERVAL: "soon",
      },
    });
    assert.equal(await p.exited, 2, p.recent());
    const err = p.stderr.join("");
    assert.match(err, /NSTANCE_SERVER_REGISTRATION_ADDR: is required/);
    assert.match(err, /NSTANCE_SERVER_AGENT_ADDR: invalid address "localhost:99999"/);
    assert.match(err, /NSTANCE_METRICS_INTERVAL: invalid duration "soon"/);
  });
});
