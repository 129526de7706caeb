// SPDX-License-Identifier: Apache-2.0
// The agents' streams at process level (issue 5 "Done when"): a real nstance-server whose `local`
// provider runs real nstance-agent processes, on "spot VMs" served by a test metadata server.
// A server restart: the agents keep running, reconnect with backoff (first retry after >= 5 s) and
// resume reporting without registering again. SIGTERM vs SIGKILL of an agent: the server records
// a graceful end and a lost stream. A spot termination notice on fresh agents reaches the server's
// reconciler, which records it and creates a replacement.
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { MetadataServer } from "../support/metadata-server.js";
import { FLEET_WAIT_MS, type FleetInstance, LocalFleet } from "./local-fleet.js";

const GROUP = "web";
const SIZE = 2;
/** The agents' stream backoff starts here (seed 003: "retry after 5 seconds initially"). */
const FIRST_RETRY_MS = 5_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("agent streams against a real server", { concurrency: false }, () => {
  let fleet: LocalFleet;
  const metadata = new MetadataServer({ cloud: "aws" });

  /** Instances whose agents a test stopped (they stay live until the reconciler replaces them). */
  const stopped = new Set<string>();

  /** Waits for `n` live, running instances of the group whose report is newer than `sinceMs`. */
  const reporting = async (
    n: number,
    sinceMs = 0,
    timeoutMs = FLEET_WAIT_MS,
  ): Promise<FleetInstance[]> => {
    let found: FleetInstance[] = [];
    await waitFor(
      `${n} agents reporting`,
      () => {
        found = fleet
          .instances()
          .filter(
            (i) =>
              i.groupKey === GROUP &&
              !stopped.has(i.id) &&
              i.health !== undefined &&
              Date.parse(String(i.health.received_at)) > sinceMs,
          );
        return found.length >= n;
      },
      timeoutMs,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    return found;
  };
  const disconnects = (id: string) =>
    fleet.decisions(id).filter((d) => d.decision === "agent_disconnected");

  before(async () => {
    await metadata.start();
    fleet = await LocalFleet.start({
      dir: await mkdtemp(join(tmpdir(), "nstance-e2e-streams-")),
      edits: [
        [["groups", "default", GROUP, "size"], SIZE],
        // Agents are silent while the server restarts and they back off; that must not count as
        // missed reports (3 × this interval) and get them replaced.
        [["shard", "health_check_interval"], "60s"],
      ],
      agentEnv: {
        NSTANCE_METRICS_INTERVAL: "2s",
        NSTANCE_PROVIDER: "aws",
        NSTANCE_METADATA_URL: metadata.url,
        NSTANCE_SPOT_POLL_INTERVAL: "1s",
      },
    });
  });
  after(async () => {
    await fleet?.stop();
    await metadata.stop();
  });

  it("reconnects with backoff after the server restarts, without registering again", async (t) => {
    const first = await reporting(SIZE);
    const ids = first.map((i) => i.id);
    const pids = await Promise.all(ids.map((id) => fleet.agentPid(id)));
    const counts = new Map(first.map((i) => [i.id, Number(i.health?.count)]));

    const { stoppedAt, leaderAt } = await fleet.restartServer();
    // The agents' retries come at 5, 15, 35, 75, 135 s … (plus jitter) after the stop: on a slow
    // restart the next one may be a minute away.
    const again = await reporting(SIZE, stoppedAt, 3 * FLEET_WAIT_MS);
    const back = Math.max(...again.map((i) => Date.parse(String(i.health?.received_at))));
    t.diagnostic(
      `server down ${leaderAt - stoppedAt} ms until leader again; agents reporting ${back - leaderAt} ms later`,
    );

    assert.deepEqual(again.map((i) => i.id).sort(), [...ids].sort(), "the same instances");
    for (const [n, id] of ids.entries()) {
      // The same agent process kept running and kept counting.
      assert.ok(alive(pids[n]!), `${id}'s agent is still running`);
      assert.equal(await fleet.agentPid(id), pids[n]);
      const inst = again.find((i) => i.id === id)!;
      assert.ok(Number(inst.health?.count) > counts.get(id)!, "the report count went on");
      const log = await fleet.agentLog(id);
      assert.equal(log.filter((l) => l.msg === "Registered").length, 1, "registered once");
      const retries = log.filter(
        (l) =>
          l.stream === "health" &&
          (l.msg === "Stream failed; reconnecting" ||
            l.msg === "Stream ended by the server; reconnecting"),
      );
      assert.ok(retries.length >= 1, `${id} reconnected its health stream`);
      // Exponential backoff from 5 s: attempt k waits at least 5 s × 2^(k-1) (capped at 60 s).
      for (const r of retries) {
        const attempt = Number(r.attempt);
        assert.ok(
          Number(r.retry_in_ms) >= Math.min(FIRST_RETRY_MS * 2 ** (attempt - 1), 60_000),
          `attempt ${attempt} waited ${String(r.retry_in_ms)} ms`,
        );
      }
    }
    assert.equal(
      fleet.server.proc.logs.filter((l) => l.msg === "Agent registered").length,
      0,
      "the restarted server registered nobody",
    );
  });

  it("tells a graceful agent shutdown (SIGTERM) from a crash (SIGKILL)", async () => {
    const [graceful, crashed] = (await reporting(SIZE)).map((i) => i.id);
    const before = { g: disconnects(graceful!).length, c: disconnects(crashed!).length };
    // The server's log lines after this point (they are parsed from its output a little after the
    // decisions it writes to the database are visible, so the wait covers both).
    const logsBefore = fleet.server.proc.logs.length;
    const closed = (id: string) =>
      fleet.server.proc.logs
        .slice(logsBefore)
        .find((l) => l.msg === "Agent health stream closed" && l.instance_id === id);
    const gracefulPid = await fleet.agentPid(graceful!);
    stopped.add(graceful!).add(crashed!);
    process.kill(gracefulPid, "SIGTERM");
    process.kill(await fleet.agentPid(crashed!), "SIGKILL");

    await waitFor(
      "the server to record both disconnects",
      () =>
        disconnects(graceful!).length > before.g &&
        disconnects(crashed!).length > before.c &&
        closed(graceful!) !== undefined &&
        closed(crashed!) !== undefined,
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    assert.equal(disconnects(graceful!).at(-1)?.reason, "graceful");
    assert.equal(disconnects(crashed!).at(-1)?.reason, "lost");
    assert.equal(closed(graceful!)?.kind, "graceful");
    assert.equal(closed(crashed!)?.kind, "lost");
    // The SIGTERMed agent said goodbye on its side too, and exited.
    await waitFor("the SIGTERMed agent to exit", () => !alive(gracefulPid), FLEET_WAIT_MS);
    const log = await fleet.agentLog(graceful!);
    assert.ok(
      log.some((l) => l.msg === "Health stream closed gracefully"),
      "agent logged its graceful close",
    );
  });

  it("a spot termination notice from the metadata service reaches the reconciler", async () => {
    // Fresh agents: the group grows by SIZE (whether the stopped ones are replaced first is the
    // failure handling's business, not this test's).
    const scale = await fleet.shardAdmin("group", "scale", GROUP, String(2 * SIZE));
    assert.equal(scale.code, 0, scale.err);
    const targets = (await reporting(SIZE)).map((i) => i.id);
    const deadline = new Date(Date.now() + 120_000).toISOString();
    metadata.setNotice({ action: "terminate", time: deadline });
    let noticed: string | undefined;
    try {
      await waitFor(
        "the reconciler to record a termination notice",
        () => {
          noticed = targets.find((id) =>
            fleet
              .decisions(id)
              .some((d) => d.decision === "termination_notice" && d.reason === "spot-terminating"),
          );
          return noticed !== undefined;
        },
        FLEET_WAIT_MS,
      ).catch(async (err: unknown) => {
        throw new Error(`${String(err)}${await fleet.recent()}`);
      });
    } finally {
      // Replacements must not inherit the notice (the metadata server serves every agent here).
      metadata.setNotice(undefined);
    }
    const id = noticed!;
    const decision = fleet
      .decisions(id)
      .find((d) => d.decision === "termination_notice" && d.reason === "spot-terminating")!;
    const evidence = JSON.parse(decision.evidence) as { action?: string; deadline_at?: string };
    assert.equal(evidence.action, "terminate");
    assert.equal(Date.parse(evidence.deadline_at ?? ""), Date.parse(deadline));
    const reported = fleet.server.proc.logs.find(
      (l) => l.msg === "Termination notice reported" && l.instance_id === id,
    );
    assert.equal(reported?.action, "terminate");
    // The agent keeps the notice in every later report.
    await waitFor(
      "the stored report to carry the notice",
      () => {
        const h = fleet.instances().find((i) => i.id === id)?.health;
        return (h?.termination_notice as { action?: string } | undefined)?.action === "terminate";
      },
      FLEET_WAIT_MS,
    );
    // The reconciler acts on it: a replacement is created for the doomed instance.
    await waitFor(
      "a replacement created for the spot-terminating instance",
      () =>
        fleet
          .instances()
          .some((i) =>
            fleet
              .decisions(i.id)
              .some((d) => d.decision === "created" && d.reason === "spot-terminating"),
          ),
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
  });
});
