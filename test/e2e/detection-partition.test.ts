// SPDX-License-Identifier: Apache-2.0
// Failure detection end to end (issue 7), network partition: one agent reaches the server through
// a TCP proxy that stops forwarding without closing either socket (the first agents each get a
// proxy of their own, so an agent replaced while the fleet starts leaves another to cut). Neither side sees an error;
// the server's keepalive finds the dead path within `keepalive_time + keepalive_timeout`, the
// provider says the VM runs, and after the missed reports it is replaced, drained and deleted.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { parseDurationMs } from "../../src/shared/duration.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import {
  agentEnvFile,
  type DetectionFleet,
  startDetectionFleet,
  TEST_FAILURE_DETECTION,
} from "./detection-fixture.js";

const KEEPALIVE_BOUND_MS =
  parseDurationMs(TEST_FAILURE_DETECTION.keepalive_time)! +
  parseDurationMs(TEST_FAILURE_DETECTION.keepalive_timeout)!;

/** Agents that each reach the server through a proxy of their own. */
const PROXIED_AGENTS = 4;

describe("failure detection: network partition", { concurrency: false }, () => {
  let d: DetectionFleet;
  const proxies: TcpProxy[] = [];
  before(async () => {
    // The group starts empty: the agents' addresses (the proxies) exist only once the server
    // listens.
    d = await startDetectionFleet({
      size: 0,
      firstAgents: Array.from({ length: PROXIED_AGENTS }, () => ({})),
    });
    for (let k = 0; k < PROXIED_AGENTS; k++) {
      const proxy = await startTcpProxy("127.0.0.1", d.fleet.server.ports.agent);
      proxies.push(proxy);
      await writeFile(
        agentEnvFile(d.fleet.dir, k),
        `export NSTANCE_SERVER_AGENT_ADDR=localhost:${proxy.port}\n`,
      );
    }
    await d.scale(3);
  });
  after(async () => {
    for (const proxy of proxies) await proxy.stop();
    await d?.stop();
  });

  it("a path that silently stops forwarding is found within the keepalive bound", async (t) => {
    const { id: victim, k } = await d.firstAgentVictim(3);
    const cutAt = Date.now();
    proxies[k]!.mode = "blackhole";

    await d.until(
      "the partitioned stream lost",
      () => (d.decision(victim, "agent_disconnected")?.at ?? 0) > cutAt,
    );
    const lostAfterMs = d.decision(victim, "agent_disconnected")!.at - cutAt;
    t.diagnostic(
      `partition → stream lost after ${lostAfterMs} ms (bound ${KEEPALIVE_BOUND_MS} ms)`,
    );
    // Generous: the bound itself, with headroom for a busy machine.
    assert.ok(lostAfterMs <= 5 * KEEPALIVE_BOUND_MS, `found after ${lostAfterMs} ms`);

    await d.until("the partitioned instance deleted", () => d.deleted(victim));
    const [lost, verdict, replacement, drain] = d.assertStory(victim, [
      "agent_disconnected",
      "found_unhealthy",
      "replacement_started",
      "drain_notified",
      "deleted",
    ]);
    assert.equal(lost!.reason, "lost");
    assert.equal(verdict!.reason, "missed-reports");
    assert.equal(verdict!.evidence.provider_status, "running", "the VM itself still runs");
    assert.ok(replacement!.at <= drain!.at);
    t.diagnostic(
      `partition → verdict ${verdict!.at - cutAt} ms, replacement create issued ${replacement!.at - cutAt} ms`,
    );
    const whole = await d.whole(3);
    assert.ok(whole.includes(String(replacement!.evidence.replacement_id)));
  });
});
