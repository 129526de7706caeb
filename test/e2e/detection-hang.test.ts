// SPDX-License-Identifier: Apache-2.0
// Failure detection end to end (issue 7), hung agents: SIGSTOP leaves the process (the VM) running
// but silent. Keepalive drops its stream, the provider still says running, and once it has missed
// `missed_reports` reports it is replaced first, then drained, then deleted when the drain times
// out. Stopping every agent of the group at once is more than single failures explain: the
// mass-failure guard stops replacements and raises the alert, and replacing resumes once an agent
// comes back and the unhealthy share falls.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sleep } from "../../src/shared/sleep.js";
import {
  DETECTION_WAIT_MS,
  type DetectionFleet,
  REPORT_INTERVAL_MS,
  startDetectionFleet,
  TEST_FAILURE_DETECTION,
} from "./detection-fixture.js";

const MISSED = TEST_FAILURE_DETECTION.missed_reports;

describe("failure detection: hung agents", { concurrency: false }, () => {
  let d: DetectionFleet;
  /** Agents this file stopped, continued at the end so the fleet can delete them. */
  const stopped = new Set<number>();
  before(async () => {
    // Replacement VMs take 3 s to boot, so an instance found hung stays in the group, unhealthy
    // and not yet draining, while the next ones are found (a replaced instance drains only once
    // its replacement runs, and a draining one no longer counts for the mass-failure guard).
    d = await startDetectionFleet({ firstAgents: [{}, {}, {}], laterBootDelayMs: 3_000 });
  });
  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // Already gone.
      }
    }
    await d?.stop();
  });

  it("SIGSTOP: drain after the missed reports, replacement first, deletion at the drain timeout", async (t) => {
    const [victim] = await d.whole(3);
    const pid = await d.fleet.agentPid(victim!);
    const stoppedAt = Date.now();
    process.kill(pid, "SIGSTOP");
    stopped.add(pid);

    await d.until("the hung instance deleted", () => d.deleted(victim!));
    const [verdict, replacement, drain, timedOut, gone] = d.assertStory(victim!, [
      "found_unhealthy",
      "replacement_started",
      "drain_notified",
      "drain_timed_out",
      "deleted",
    ]);
    // Keepalive drops the silent peer's stream (unless a leadership change ended it first).
    const lost = d
      .history(victim!)
      .find((x) => x.decision === "agent_disconnected" && x.at > stoppedAt);
    if (lost) assert.equal(lost.reason, "lost", "keepalive found the silent peer");
    assert.equal(verdict!.reason, "missed-reports");
    assert.equal(verdict!.evidence.provider_status, "running");
    assert.equal(verdict!.evidence.skip_drain, false);
    assert.ok(Number(verdict!.evidence.missed_reports) >= MISSED);
    const lastReport = Date.parse(String(verdict!.evidence.last_report_at));
    assert.ok(
      verdict!.at - lastReport >= MISSED * REPORT_INTERVAL_MS,
      `judged ${verdict!.at - lastReport} ms after the last report: not before ${MISSED} intervals`,
    );
    assert.ok(replacement!.at <= drain!.at, "replacement before the drain");
    assert.ok(drain!.at <= timedOut!.at && timedOut!.at <= gone!.at);
    t.diagnostic(
      `SIGSTOP → stream lost ${lost ? lost.at - stoppedAt : "-"} ms, verdict ${verdict!.at - stoppedAt} ms, replacement create issued ${replacement!.at - stoppedAt} ms, drain ${drain!.at - stoppedAt} ms, deleted ${gone!.at - stoppedAt} ms`,
    );
    const whole = await d.whole(3);
    assert.ok(whole.includes(String(replacement!.evidence.replacement_id)));
  });

  it("mass failure: replacements stop and the alert appears; they resume when the share falls", async (t) => {
    const ids = await d.whole(3);
    const pids = await Promise.all(ids.map((id) => d.fleet.agentPid(id)));
    const stoppedAt = Date.now();
    for (const pid of pids) {
      process.kill(pid, "SIGSTOP");
      stopped.add(pid);
    }
    const alert = await d.fleet.server.proc.waitLog(
      (l) => l.msg === "Mass-failure guard tripped; replacements paused" && l.group === "web",
      DETECTION_WAIT_MS,
    );
    t.diagnostic(
      `3 of 3 hung → alert after ${Date.now() - stoppedAt} ms: ${JSON.stringify(alert)}`,
    );
    assert.ok(Number(alert.unhealthy) > Number(alert.limit));
    const held = (): string[] =>
      ids.filter(
        (id) =>
          d.decision(id, "found_unhealthy") !== undefined &&
          d.decision(id, "replacement_started") === undefined,
      );
    // Verdicts found a moment apart may let the first through before the guard trips; the
    // others are held while more than the limit remain.
    await d.until("two instances held by the guard", () => held().length >= 2);
    const waiting = held();
    await sleep(5 * REPORT_INTERVAL_MS);
    assert.deepEqual(held(), waiting, "nothing replaced while the guard holds");

    // One agent comes back (its network healed): its verdict is cleared, the share falls to one,
    // and the last one is replaced.
    const back = waiting[0]!;
    const backPid = pids[ids.indexOf(back)]!;
    process.kill(backPid, "SIGCONT");
    stopped.delete(backPid);
    await d.until(
      "the returning agent recovered",
      () => d.decision(back, "recovered") !== undefined,
    );
    await d.fleet.server.proc.waitLog(
      (l) => l.msg === "Mass-failure guard cleared; replacing again" && l.group === "default/web",
      DETECTION_WAIT_MS,
    );
    const last = waiting[1]!;
    await d.until("the last hung instance replaced and deleted", () => d.deleted(last));
    d.assertStory(last, ["found_unhealthy", "replacement_started", "drain_notified", "deleted"]);
    d.assertStory(back, ["found_unhealthy", "recovered"]);
    assert.equal(d.decision(back, "replacement_started"), undefined);
    assert.ok(!d.deleted(back), "the recovered instance stays");
    await d.whole(3);
  });
});
