// SPDX-License-Identifier: Apache-2.0
// The agent's streams after a failover, in process against the fake server (the chaos soak's
// silent agent): a health stream sitting in a long backoff retries at once when another stream of
// its channel reaches the server, instead of leaving the leader without reports.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AgentChannel } from "../../src/agent/agent-channel.js";
import { FileStream } from "../../src/agent/file-stream.js";
import { HealthReporter } from "../../src/agent/health-reporter.js";
import { IdentityDir } from "../../src/agent/identity-dir.js";
import { MetricsSampler } from "../../src/agent/metrics/metrics-sampler.js";
import { issueTestClientCertificate } from "../../src/pki/testing.js";
import { type Logger, silentLogger } from "../../src/shared/logger.js";
import { FakeAgentServer } from "../support/fake-agent-server.js";
import { randomInstanceId } from "./agent-process.js";

/** The health stream's backoff: without the wake-up its retry would be a minute away. */
const LONG = { initialMs: 60_000, maxMs: 60_000 };
/** The file stream's backoff: it retries quickly and so reaches the leader first. */
const FAST = { initialMs: 50, maxMs: 200, factor: 2 };
/** Bound for the health report after the server leads: far below the health stream's minute. */
const REPORT_BOUND_MS = 15_000;

type Line = { msg: string } & Record<string, unknown>;

/** A logger that keeps info and warn lines. */
function capture(lines: Line[]): Logger {
  const keep = (msg: string, attrs?: Record<string, unknown>): void => {
    lines.push({ ...attrs, msg });
  };
  const logger: Logger = { ...silentLogger, info: keep, warn: keep, child: () => logger };
  return logger;
}

describe("agent streams after a failover (in process)", () => {
  let server: FakeAgentServer;
  let root: string;
  before(async () => {
    server = await FakeAgentServer.create({ role: "standby" });
    await server.start();
    root = await mkdtemp(join(tmpdir(), "nstance-agent-failover-"));
  });
  after(async () => {
    await server.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("a health stream in backoff retries at once when the file stream reaches the leader", async (t) => {
    const id = randomInstanceId();
    const cert = await issueTestClientCertificate(server.pki.ca, { clientId: id, role: "agent" });
    const lines: Line[] = [];
    const logger = capture(lines);
    const channel = new AgentChannel({
      addrs: [server.agentAddr],
      caCertPem: server.pki.caCertPem,
      certificatePem: cert.certPem,
      privateKeyPem: cert.keyPem,
      serverReachedAfterMs: 200,
      logger,
    });
    const identity = new IdentityDir({ dir: join(root, "identity"), logger: silentLogger });
    await identity.ensure();
    const metrics = new MetricsSampler({ logger: silentLogger });
    await metrics.start();
    const reporter = new HealthReporter({
      channel,
      instanceId: id,
      version: "9.9.9",
      intervalMs: 100,
      sources: { metrics, recvDir: join(root, "recv"), identity, patchError: () => undefined },
      logger,
      backoff: LONG,
    });
    const files = new FileStream({
      channel,
      receiver: { apply: () => Promise.reject(new Error("no patches expected")) },
      logger,
      backoff: FAST,
    });
    reporter.start();
    files.start();
    try {
      // The server is a standby: the health stream is refused and waits its minute.
      const refused = await server.waitFor("the health stream refused", () =>
        lines.find((l) => l.msg === "Stream failed; reconnecting" && l.stream === "health"),
      );
      assert.equal(refused.retry_in_ms, 60_000);
      const t0 = Date.now();
      server.setRole("leader");
      const report = await server.waitFor(
        "a health report at the leader",
        () => server.reportsFrom(id)[0],
        REPORT_BOUND_MS,
      );
      const tookMs = Date.now() - t0;
      t.diagnostic(`health report ${tookMs} ms after the server became leader`);
      assert.equal(report.instanceId, id);
      assert.ok(
        lines.some(
          (l) =>
            l.msg === "Another stream reached the server; retrying now" && l.stream === "health",
        ),
        "the health stream was woken",
      );
      assert.ok(
        lines.some((l) => l.msg === "Reached agent service" && l.addr === server.agentAddr),
        "the channel saw the server reached",
      );
    } finally {
      await reporter.stop();
      await files.stop();
      await metrics.stop();
      channel.close();
    }
  });
});
