// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { sleep } from "../../shared/sleep.js";
import { ProviderError } from "../provider.js";
import { testCreateRequest, testLbConfig } from "../testing.js";
import { defaultAgentCommand, type LocalInstanceMeta, LocalProvider } from "./local-provider.js";
import { readStartTicks } from "./process-probe.js";

/**
 * A stand-in agent: records what it was given, starts a grandchild in its process group, logs a
 * line and idles. With IGNORE_TERM=1 it shrugs off SIGTERM.
 */
const STAND_IN = `
if (process.env.IGNORE_TERM === "1") process.on("SIGTERM", () => {});
const fs = require("node:fs");
const { spawn } = require("node:child_process");
const recv = process.env.NSTANCE_RECV_DIR;
// Logged first (stdout to a file is synchronous), so the line exists once seen.json does.
console.log("stand-in agent up");
const grandchild = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
fs.writeFileSync(recv + "/seen.json", JSON.stringify({
  env: process.env,
  grandchild: grandchild.pid,
  nonce: fs.readFileSync(process.env.NSTANCE_IDENTITY_DIR + "/nonce.jwt", "utf8"),
  ca: fs.readFileSync(process.env.NSTANCE_IDENTITY_DIR + "/ca.crt", "utf8"),
}));
setInterval(() => {}, 1000);
`;
const COMMAND = [process.execPath, "-e", STAND_IN];
const LIST = { clusterId: "test-cluster", shard: "shard-a" };

async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when the process has ended: gone, or a zombie its parent (this test) has yet to reap. */
async function deadOrZombie(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/stat`, "utf8")).includes(") Z ");
  } catch {
    return true;
  }
}

interface Seen {
  env: Record<string, string>;
  grandchild: number;
  nonce: string;
  ca: string;
}

async function seenBy(provider: LocalProvider, instanceId: string): Promise<Seen> {
  const file = join(provider.instanceDir(instanceId), "recv", "seen.json");
  return waitFor(`${file}`, async () => {
    try {
      return JSON.parse(await readFile(file, "utf8")) as Seen;
    } catch {
      return undefined;
    }
  });
}

async function metaOf(provider: LocalProvider, instanceId: string): Promise<LocalInstanceMeta> {
  const text = await readFile(join(provider.instanceDir(instanceId), "meta.json"), "utf8");
  return JSON.parse(text) as LocalInstanceMeta;
}

describe("LocalProvider", () => {
  let stateDir: string;
  let provider: LocalProvider;
  const strays: ChildProcess[] = [];
  const grandchildren: number[] = [];
  const strayPids: number[] = [];

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "nstance-local-provider-"));
    provider = new LocalProvider({ stateDir, command: COMMAND, stopGraceMs: 3_000 });
  });

  after(async () => {
    // Leave no process behind, whatever failed.
    for (const inst of await provider.listInstances(LIST)) {
      await provider.deleteInstance(inst.instanceId, inst.providerInstanceId);
    }
    for (const c of strays) c.kill("SIGKILL");
    for (const pid of [...strayPids, ...grandchildren])
      if (alive(pid)) process.kill(pid, "SIGKILL");
    await provider.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it("creates a running agent process with its identity, env and log", async () => {
    const secretBefore = process.env.NSTANCE_ENCRYPTION_KEY;
    process.env.NSTANCE_ENCRYPTION_KEY = "must-not-reach-agents";
    let p: LocalProvider;
    try {
      // The default base env is read at construction.
      p = new LocalProvider({ stateDir, command: COMMAND });
    } finally {
      if (secretBefore === undefined) delete process.env.NSTANCE_ENCRYPTION_KEY;
      else process.env.NSTANCE_ENCRYPTION_KEY = secretBefore;
    }
    const req = testCreateRequest({
      agentEnv: { NSTANCE_SERVER_REGISTRATION_ADDR: "127.0.0.1:8992", NSTANCE_INSTANCE_ID: "evil" },
      tags: { team: "a" },
    });
    const res = await p.createInstance(req);
    assert.equal(res.status, "running");
    assert.equal(res.providerInstanceId, `nstance-agent-${req.instanceId}`);
    assert.equal(res.privateIpv4, "127.0.0.1");
    assert.equal(res.hostname, `${req.instanceId}.local`);

    const seen = await seenBy(p, req.instanceId);
    grandchildren.push(seen.grandchild);
    const dir = p.instanceDir(req.instanceId);
    assert.equal(seen.nonce, req.nonce);
    assert.equal(seen.ca, req.caCertPem);
    assert.equal(seen.env.NSTANCE_IDENTITY_DIR, join(dir, "identity"));
    assert.equal(seen.env.NSTANCE_KEYS_DIR, join(dir, "keys"));
    assert.equal(seen.env.NSTANCE_RECV_DIR, join(dir, "recv"));
    assert.equal(seen.env.NSTANCE_INSTANCE_ID, req.instanceId);
    assert.equal(seen.env.NSTANCE_INSTANCE_HOSTNAME, `${req.instanceId}.local`);
    assert.equal(seen.env.NSTANCE_INSTANCE_IPV4, "127.0.0.1");
    assert.equal(seen.env.NSTANCE_PROVIDER, "none");
    assert.equal(seen.env.NSTANCE_SERVER_REGISTRATION_ADDR, "127.0.0.1:8992");
    assert.equal(seen.env.NSTANCE_ENCRYPTION_KEY, undefined);
    assert.equal(seen.env.PATH, process.env.PATH);

    const nonceStat = await stat(join(dir, "identity", "nonce.jwt"));
    assert.equal(nonceStat.mode & 0o777, 0o600);
    const meta = await metaOf(p, req.instanceId);
    assert.equal(meta.status, "running");
    assert.equal(meta.group, "web");
    assert.deepEqual(meta.tags, { team: "a" });
    assert.deepEqual(meta.command, COMMAND);
    assert.ok(meta.pid && alive(meta.pid));
    assert.equal(meta.startTicks, await readStartTicks(meta.pid));
    assert.ok(!JSON.stringify(meta).includes(req.nonce), "meta.json holds no nonce");
    await waitFor("log line", async () =>
      (await readFile(join(dir, "agent.log"), "utf8")).includes("stand-in agent up"),
    );

    const st = await p.getInstanceStatus(req.instanceId, res.providerInstanceId);
    assert.equal(st?.status, "running");
    assert.equal(st?.group, "web");
    assert.equal(st?.tenant, "default");
    // Either ID finds it.
    assert.equal((await p.getInstanceStatus("", res.providerInstanceId))?.status, "running");
    await p.close();
  });

  it("reports a SIGSTOPped agent as running (hung VM) and a killed one as stopped", async () => {
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    grandchildren.push((await seenBy(provider, req.instanceId)).grandchild);
    const { pid } = await metaOf(provider, req.instanceId);
    process.kill(pid!, "SIGSTOP");
    await waitFor("stopped state", async () =>
      (await readFile(`/proc/${pid}/stat`, "utf8")).includes(") T "),
    );
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "running",
    );
    process.kill(pid!, "SIGCONT");
    process.kill(pid!, "SIGKILL");
    const st = await waitFor("stopped status", async () => {
      const s = await provider.getInstanceStatus(req.instanceId, res.providerInstanceId);
      return s?.status === "stopped" ? s : undefined;
    });
    assert.equal(st.instanceId, req.instanceId);
    // Still listed (the VM exists, stopped) until deleted.
    const listed = await provider.listInstances(LIST);
    assert.equal(listed.find((i) => i.instanceId === req.instanceId)?.status, "stopped");
    assert.equal(await provider.deleteInstance(req.instanceId, res.providerInstanceId), "deleted");
  });

  it("is re-adopted by a new provider over the same state dir, which can delete it", async () => {
    const req = testCreateRequest();
    await provider.createInstance(req);
    const { grandchild } = await seenBy(provider, req.instanceId);
    grandchildren.push(grandchild);
    const { pid } = await metaOf(provider, req.instanceId);

    const second = new LocalProvider({ stateDir, command: COMMAND, stopGraceMs: 3_000 });
    const listed = await second.listInstances(LIST);
    const mine = listed.find((i) => i.instanceId === req.instanceId);
    assert.equal(mine?.status, "running");
    assert.equal(mine?.providerInstanceId, `nstance-agent-${req.instanceId}`);
    assert.deepEqual(await second.listInstances({ clusterId: "test-cluster", shard: "other" }), []);

    assert.equal(await second.deleteInstance(req.instanceId, mine.providerInstanceId), "deleted");
    assert.ok(await deadOrZombie(pid!), "agent process ended");
    await waitFor("agent reaped", async () => !alive(pid!));
    await waitFor("grandchild gone", async () => !alive(grandchild));
    assert.equal(existsSync(second.instanceDir(req.instanceId)), false);
    const kept = await readFile(join(stateDir, "deleted", `${req.instanceId}.log`), "utf8");
    assert.match(kept, /stand-in agent up/);
    assert.equal(
      await second.getInstanceStatus(req.instanceId, mine.providerInstanceId),
      undefined,
    );
    assert.equal(
      await provider.deleteInstance(req.instanceId, mine.providerInstanceId),
      "not_found",
    );
  });

  it("shows a delete cut short by a crash as the process's state, so it is retried", async () => {
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    grandchildren.push((await seenBy(provider, req.instanceId)).grandchild);
    const meta = await metaOf(provider, req.instanceId);
    const metaFile = join(provider.instanceDir(req.instanceId), "meta.json");
    await writeFile(metaFile, JSON.stringify({ ...meta, status: "deleting" }));
    const fresh = new LocalProvider({ stateDir, command: COMMAND });
    assert.equal(
      (await fresh.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "running",
    );
    assert.equal(await fresh.deleteInstance(req.instanceId, res.providerInstanceId), "deleted");
    await waitFor("agent reaped", async () => !alive(meta.pid!));
  });

  it("SIGKILLs an agent that ignores SIGTERM after the grace period", async () => {
    const p = new LocalProvider({ stateDir, command: COMMAND, stopGraceMs: 2_000 });
    const req = testCreateRequest({ agentEnv: { IGNORE_TERM: "1" } });
    const res = await p.createInstance(req);
    grandchildren.push((await seenBy(p, req.instanceId)).grandchild);
    const { pid } = await metaOf(p, req.instanceId);
    const t0 = Date.now();
    const deleting = p.deleteInstance(req.instanceId, res.providerInstanceId);
    await waitFor(
      "deleting status",
      async () =>
        (await p.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status === "deleting",
    );
    assert.equal(await deleting, "deleted");
    assert.ok(Date.now() - t0 >= 1_900, "waited for the grace period");
    assert.ok(await deadOrZombie(pid!), "agent process ended");
    await waitFor("agent reaped", async () => !alive(pid!));
  });

  it("never takes a reused PID for the instance, and never kills it", async () => {
    // An unrelated process whose PID we plant in an instance's meta.json.
    const stranger = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
      stdio: "ignore",
    });
    strays.push(stranger);
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    grandchildren.push((await seenBy(provider, req.instanceId)).grandchild);
    const meta = await metaOf(provider, req.instanceId);
    const realPid = meta.pid!;
    strayPids.push(realPid);
    await waitFor(
      "stranger start",
      async () => (await readStartTicks(stranger.pid!)) !== undefined,
    );
    const metaFile = join(provider.instanceDir(req.instanceId), "meta.json");

    // 1. PID of a process without the instance's environment marker (start time unknown).
    await writeFile(
      metaFile,
      JSON.stringify({ ...meta, pid: stranger.pid, startTicks: undefined }),
    );
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "stopped",
    );

    // 2. The right environment but another start time.
    const twin = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
      stdio: "ignore",
      env: { ...process.env, NSTANCE_INSTANCE_ID: req.instanceId },
    });
    strays.push(twin);
    const twinTicks = await waitFor("twin start", () => readStartTicks(twin.pid!));
    await writeFile(
      metaFile,
      JSON.stringify({ ...meta, pid: twin.pid, startTicks: twinTicks + 1 }),
    );
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "stopped",
    );
    // With the right start time it is recognised (the guard is not just "always stopped").
    await writeFile(metaFile, JSON.stringify({ ...meta, pid: twin.pid, startTicks: twinTicks }));
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "running",
    );

    // Deleting with the stranger's PID planted must leave the stranger alone.
    await writeFile(
      metaFile,
      JSON.stringify({ ...meta, pid: stranger.pid, startTicks: undefined }),
    );
    assert.equal(await provider.deleteInstance(req.instanceId, res.providerInstanceId), "deleted");
    assert.equal(alive(stranger.pid!), true, "unrelated process survives");
  });

  it("fails a create cleanly when the command cannot start", async () => {
    const p = new LocalProvider({ stateDir, command: ["/nonexistent/nstance-agent"] });
    const req = testCreateRequest();
    await assert.rejects(p.createInstance(req), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.transient, false);
      assert.match(err.message, /cannot start \/nonexistent\/nstance-agent/);
      return true;
    });
    assert.equal(existsSync(p.instanceDir(req.instanceId)), false);
    assert.equal(await p.getInstanceStatus(req.instanceId, ""), undefined);
  });

  it("rejects duplicate and unsafe instance IDs", async () => {
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    grandchildren.push((await seenBy(provider, req.instanceId)).grandchild);
    await assert.rejects(provider.createInstance(req), { code: "already_exists" });
    await assert.rejects(provider.createInstance(testCreateRequest({ instanceId: "../escape" })), {
      code: "invalid_argument",
    });
    await assert.rejects(provider.getInstanceStatus("a/b", ""), { code: "invalid_argument" });
    await provider.deleteInstance(req.instanceId, res.providerInstanceId);
  });

  it("keeps load-balancer membership in a file shared across provider instances", async () => {
    const lb = { providerInstanceId: "nstance-agent-x", lbName: "web", lbConfig: testLbConfig() };
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    await provider.registerWithLb(lb);
    await provider.registerWithLb({ ...lb, providerInstanceId: "nstance-agent-y" });
    const other = new LocalProvider({ stateDir, command: COMMAND });
    assert.equal(await other.getLbTargetState(lb), "healthy");
    assert.deepEqual(await other.listLbInstances({ lbName: "web", lbConfig: lb.lbConfig }), [
      "nstance-agent-x",
      "nstance-agent-y",
    ]);
    await other.deregisterFromLb(lb);
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    assert.equal(await provider.checkSubnetCapacity("anything"), true);
  });

  it("keeps only the newest deleted logs", async () => {
    const p = new LocalProvider({ stateDir, command: COMMAND, deletedLogsKept: 2 });
    for (let i = 0; i < 3; i++) {
      const req = testCreateRequest();
      const res = await p.createInstance(req);
      grandchildren.push((await seenBy(p, req.instanceId)).grandchild);
      await p.deleteInstance(req.instanceId, res.providerInstanceId);
    }
    const { readdir } = await import("node:fs/promises");
    assert.equal((await readdir(join(stateDir, "deleted"))).length, 2);
  });

  it("defaults to this checkout's agent entry point through tsx", () => {
    const cmd = defaultAgentCommand();
    assert.equal(cmd[0], process.execPath);
    assert.equal(cmd[1], "--import");
    assert.match(cmd[2]!, /^file:\/\/.*\/tsx\/.*\.mjs$/);
    assert.match(cmd[3]!, /src\/bin\/nstance-agent\.ts$/);
  });
});
