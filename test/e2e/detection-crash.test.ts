// SPDX-License-Identifier: Apache-2.0
// Failure detection end to end (issue 7), crash and graceful stop: a real nstance-server whose
// `local` provider runs real nstance-agent processes. kill -9 of an agent (its VM is gone): the
// stream is lost, the provider says the VM stopped, a replacement is created and the old instance
// deleted without drain. SIGTERM and restart of an agent (an agent upgrade): the stream closes
// gracefully and the instance is left alone.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { open, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { LocalInstanceMeta } from "../../src/providers/local/local-provider.js";
import { readStartTicks } from "../../src/providers/local/process-probe.js";
import { sleep } from "../../src/shared/sleep.js";
import {
  type DetectionFleet,
  REPORT_INTERVAL_MS,
  startDetectionFleet,
} from "./detection-fixture.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The environment a process started with (/proc/<pid>/environ). */
async function environOf(pid: number): Promise<Record<string, string>> {
  const raw = await readFile(`/proc/${pid}/environ`, "utf8");
  const env: Record<string, string> = {};
  for (const entry of raw.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

describe("failure detection: crash and graceful stop", { concurrency: false }, () => {
  let d: DetectionFleet;
  before(async () => {
    d = await startDetectionFleet();
  });
  after(async () => {
    await d?.stop();
  });

  it("kill -9 of an agent: replacement created, old instance deleted without drain", async (t) => {
    const [, victim] = await d.whole(3);
    const pid = await d.fleet.agentPid(victim!);
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");

    await d.until("the killed instance deleted", () => d.deleted(victim!));
    const [, , lost, verdict, replacement, gone] = d.assertStory(victim!, [
      "created",
      "registered",
      "agent_disconnected",
      "found_unhealthy",
      "replacement_started",
      "deleted",
    ]);
    assert.equal(lost!.reason, "lost");
    assert.equal(verdict!.reason, "stopped");
    assert.equal(verdict!.evidence.trigger, "disconnect");
    assert.equal(verdict!.evidence.provider_status, "stopped");
    assert.equal(verdict!.evidence.skip_drain, true);
    assert.equal(typeof verdict!.evidence.last_report_age_ms, "number");
    assert.equal(d.decision(victim!, "drain_notified"), undefined, "no drain for a dead VM");
    assert.ok(replacement!.at <= gone!.at, "the replacement was started first");
    t.diagnostic(
      `kill -9 → verdict ${verdict!.at - killedAt} ms, → replacement create issued ${replacement!.at - killedAt} ms, → deleted ${gone!.at - killedAt} ms`,
    );

    // The operator reads the same story with `nstance-admin instance history`.
    const cli = await d.fleet.shardAdmin("instance", "history", victim!, "--json");
    assert.equal(cli.code, 0, cli.err);
    const shown = JSON.parse(cli.out) as {
      results: Array<{ instance: { status: string; history: Array<{ decision: string }> } }>;
    };
    const instance = shown.results[0]!.instance;
    assert.equal(instance.status, "deleted");
    assert.deepEqual(
      instance.history.map((e) => e.decision),
      d.history(victim!).map((e) => e.decision),
    );
    const human = await d.fleet.shardAdmin("instance", "history", victim!);
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /found_unhealthy\s+stopped\s+.*provider_status=stopped/);

    const newId = String(replacement!.evidence.replacement_id);
    const whole = await d.whole(3);
    assert.ok(whole.includes(newId), "the replacement is in the group");
    assert.ok(!whole.includes(victim!));
    d.assertStory(newId, ["create_requested", "created", "registered"]);
    assert.equal(d.decision(newId, "create_requested")?.evidence.replaces, victim);
  });

  it("SIGTERM and restart of an agent: a graceful close, no alarm, no replacement", async () => {
    const before = await d.whole(3);
    const victim = before[0]!;
    const pid = await d.fleet.agentPid(victim);
    const env = await environOf(pid);
    const dir = d.fleet.instanceDir(victim);
    const meta = JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as LocalInstanceMeta;

    process.kill(pid, "SIGTERM");
    await d.until("the agent to exit", () => !alive(pid));
    await d.until(
      "the graceful close recorded",
      () => d.decision(victim, "agent_disconnected") !== undefined,
    );
    assert.equal(d.decision(victim, "agent_disconnected")!.reason, "graceful");

    // The agent comes back as after an upgrade: same identity, same instance directory. The
    // provider's meta.json follows the new process, as the VM's own supervisor would.
    const restartedAt = Date.now();
    const log = await open(join(dir, "agent.log"), "a");
    const child = spawn(meta.command[0]!, meta.command.slice(1), {
      cwd: dir,
      env,
      detached: true,
      stdio: ["ignore", log.fd, log.fd],
    });
    await log.close();
    child.unref();
    const newPid = child.pid!;
    const updated = { ...meta, pid: newPid, startTicks: await readStartTicks(newPid) };
    await writeFile(join(dir, "meta.json.tmp"), JSON.stringify(updated, null, 2));
    await rename(join(dir, "meta.json.tmp"), join(dir, "meta.json"));

    await d.until("the restarted agent to report", () =>
      d.reportingSince(restartedAt).includes(victim),
    );
    // A few more report intervals (and sweeps) to be sure nothing follows.
    await sleep(4 * REPORT_INTERVAL_MS);
    assert.equal(d.decision(victim, "found_unhealthy"), undefined, "no false alarm");
    assert.equal(d.decision(victim, "replacement_started"), undefined);
    assert.deepEqual(d.live(), before, "the same three instances");
    const agentLog = await d.fleet.agentLog(victim);
    assert.equal(agentLog.filter((l) => l.msg === "Registered").length, 1, "registered once");
  });
});
