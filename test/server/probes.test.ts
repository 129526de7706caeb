// SPDX-License-Identifier: Apache-2.0
// /healthz, /readyz, /cluster and /metrics of a real nstance-server process, its settings file, and
// its logging flags (issue 8; seed 004's probes, seed 002's cluster view).
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { ClusterView } from "../../src/server/health/cluster-view.js";
import type { ReadinessReport } from "../../src/server/health/run-readiness.js";
import { parseExposition, sampleValue } from "../../src/server/metrics/testing.js";
import { VERSION } from "../../src/shared/version.js";
import { freePort, type ServerProcess, startServerProcess } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";

/** Every wait is bounded generously: a loaded CI machine is slow, not broken. */
const WAIT_MS = 60_000;

async function getJson<T>(
  port: number,
  path: string,
): Promise<{ status: number; body: T | undefined }> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    const text = await r.text();
    return { status: r.status, body: JSON.parse(text) as T };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** Polls `fn` until it returns a value, or throws with the last value seen and the logs. */
async function poll<T>(
  what: string,
  srv: ServerProcess,
  fn: () => Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) {
      const logs = srv.logs.slice(-15).map((l) => JSON.stringify(l));
      throw new Error(`${what} not reached within ${timeoutMs} ms\n${logs.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits for the process to exit and returns its code and stderr. */
function runToExit(args: string[]) {
  return (async () => {
    const srv = startServerProcess({ args, healthPort: await freePort() });
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      srv.exited,
      new Promise<string>((r) => {
        timer = setTimeout(() => r("still running"), WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (code === "still running") await srv.stop("SIGKILL");
    return { code, stderr: srv.stderr.join("") };
  })();
}

describe("probes of a real server", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("unready while the config is missing, then ready with a cluster view and metrics", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-probes-"));
    dirs.push(dir);
    const bucket = join(dir, "bucket");
    const ports = {
      election: await freePort(),
      registration: await freePort(),
      operator: await freePort(),
      agent: await freePort(),
    };
    // Everything but the health bind (a flag from test support) comes from the settings file.
    const settingsFile = join(dir, "server.jsonc");
    await writeFile(
      settingsFile,
      `// settings for the probes test
{
  "id": "probe-1",
  "shard": "local",
  "storage": "file",
  "bucket": ${JSON.stringify(bucket)},
  "cachedir": ${JSON.stringify(join(dir, "cache"))},
  "advertise_host": "localhost",
  "heartbeat_interval": "1s",
  "heartbeat_ttl": "10s",
  "bind": {
    "election": "127.0.0.1:${ports.election}",
    "registration": "127.0.0.1:${ports.registration}",
    "operator": "127.0.0.1:${ports.operator}",
    "agent": "127.0.0.1:${ports.agent}",
  },
}
`,
    );
    const args = ["--config", settingsFile];

    // 1. No shard config: alive, but unready once loading has given up (and before).
    const firstPort = await freePort();
    const first = startServerProcess({ args, healthPort: firstPort });
    try {
      await first.waitLog((l) => l.fatal === true, WAIT_MS);
      const live = await getJson<Record<string, string>>(firstPort, "/healthz");
      assert.equal(live.status, 200);
      assert.deepEqual(live.body, { status: "ok", component: "nstance-server", version: VERSION });
      const ready = await getJson<ReadinessReport>(firstPort, "/readyz");
      assert.equal(ready.status, 503);
      assert.equal(ready.body?.checks.config?.status, "down");
      assert.match(ready.body?.checks.config?.message ?? "", /configuration failed to load/);
      assert.equal(ready.body?.checks.grpc?.status, "down");
      assert.equal((await first.health()).status, 503, "seed 000's /health is unchanged");
    } finally {
      await first.stop();
    }

    // 2. With the config: ready, leader, instances counted, metrics after known events.
    await writeShardConfig(
      bucket,
      await shardConfigText([
        ...STEADY_ELECTION,
        [["shard", "infra", "provider"], "fake"],
        [["groups", "default", "web", "size"], 2],
      ]),
    );
    const port = await freePort();
    const srv = startServerProcess({ args, healthPort: port });
    try {
      const view = await poll("a ready leader with both instances", srv, async () => {
        const r = await getJson<ClusterView>(port, "/cluster");
        const web = r.body?.groups.find((g) => g.group === "web");
        return r.status === 200 && r.body?.role === "leader" && web?.instances === 2
          ? r.body
          : undefined;
      });
      assert.equal(view.server_id, "probe-1");
      assert.equal(view.shard, "local");
      assert.equal(view.version, VERSION);
      assert.ok(view.term >= 1);
      assert.equal(view.storage, "connected");
      assert.equal(view.database, "connected");
      assert.equal(view.connected_agents, 0);
      assert.deepEqual(view.groups.find((g) => g.group === "web")?.states, {
        pending: 2,
        running: 0,
        unhealthy: 0,
        draining: 0,
        deleting: 0,
      });
      assert.equal(view.cluster.registered_servers, 1);
      assert.equal(view.cluster.healthy_servers, 1);
      assert.equal(view.cluster.leader_id, "probe-1");
      assert.equal(
        view.cluster.servers[0]?.addresses.registration,
        `localhost:${ports.registration}`,
      );

      const ready = await poll("every readiness check ok", srv, async () => {
        const r = await getJson<ReadinessReport>(port, "/readyz");
        return r.status === 200 && r.body?.status === "ok" ? r : undefined;
      });
      for (const name of ["config", "storage", "sqlite", "election", "provider", "grpc"]) {
        assert.equal(
          ready.body?.checks[name]?.status,
          "ok",
          `${name}: ${ready.body?.checks[name]?.message}`,
        );
      }

      // A row exists from the moment a create is requested; the metric counts finished creates.
      const createsDone = { action: "create", outcome: "done" };
      const samples = await poll("both creates counted", srv, async () => {
        const m = await fetch(`http://127.0.0.1:${port}/metrics`);
        assert.equal(m.status, 200);
        const s = parseExposition(await m.text());
        return sampleValue(s, "nstance_reconcile_actions_total", createsDone) === 2 ? s : undefined;
      });
      const v = (name: string, labels: Record<string, string> = {}) =>
        sampleValue(samples, name, labels);
      assert.equal(v("nstance_build_info", { server_id: "probe-1", version: VERSION }), 1);
      assert.equal(v("nstance_leader"), 1);
      assert.equal(v("nstance_leadership_term"), view.term);
      assert.equal(v("nstance_instances", { group: "web", state: "pending" }), 2);
      assert.equal(
        v("nstance_provider_calls_total", { operation: "createInstance", outcome: "ok" }),
        2,
      );
      assert.ok((v("nstance_reconcile_duration_seconds_count") ?? 0) >= 1);
      assert.ok(
        (v("nstance_storage_operations_total", { operation: "put", outcome: "ok" }) ?? 0) > 0,
      );
      assert.ok((v("nstance_process_resident_memory_bytes") ?? 0) > 0);

      // Every log line carries the component, the version and the server id.
      const lines = srv.logs.filter((l) => !("raw" in l));
      assert.ok(lines.length > 5);
      for (const l of lines) {
        assert.equal(typeof l.component, "string", JSON.stringify(l));
        assert.equal(l.version, VERSION, JSON.stringify(l));
        assert.equal(l.server_id, "probe-1", JSON.stringify(l));
      }
    } finally {
      await srv.stop();
    }
  });
});

describe("logging flags and the settings file at the process boundary", {
  concurrency: true,
}, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const base = ["--id", "s1", "--shard", "local", "--storage", "file", "--bucket", "/nonexistent"];

  it("an invalid --log-level aborts startup with exit 2 and the valid values", async () => {
    const r = await runToExit([...base, "--log-level", "loud"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid --log-level "loud" \(valid: debug, info, warn, error\)/);
  });

  it("an invalid settings file aborts startup with exit 2 and file:line:column", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-settings-"));
    dirs.push(dir);
    const file = join(dir, "server.jsonc");
    await writeFile(file, `{\n  "id": "s1",\n  "log_format": "xml"\n}\n`);
    const r = await runToExit(["--config", file]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(
      r.stderr.includes(`${file}:3:17: log_format: must be one of "json", "text" (got "xml")`),
      r.stderr,
    );
  });

  it("--log-level warn --log-format text: text lines, warnings only, with the base attributes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-logs-"));
    dirs.push(dir);
    const srv = startServerProcess({
      args: [
        "--id",
        "s9",
        "--shard",
        "local",
        "--storage",
        "file",
        "--bucket",
        join(dir, "bucket"),
        "--cachedir",
        join(dir, "cache"),
        "--log-level",
        "warn",
        "--log-format",
        "text",
      ],
      healthPort: await freePort(),
    });
    try {
      // No shard config: the load fails and is retried with a warning.
      const warn = await srv.waitLog(
        (l) => typeof l.raw === "string" && l.raw.includes("Configuration load failed, retrying"),
        WAIT_MS,
      );
      const line = String(warn.raw);
      assert.match(line, /^\S+ WARN {2}Configuration load failed, retrying /);
      assert.match(line, / component=nstance-server /);
      assert.match(line, new RegExp(` version=${VERSION.replaceAll(".", "\\.")}( |$)`));
      assert.match(line, / server_id=s9( |$)/);
      assert.equal(
        srv.logs.some((l) => !("raw" in l)),
        false,
        "no JSON lines in text format",
      );
      assert.equal(
        srv.logs.some((l) => typeof l.raw === "string" && / INFO /.test(l.raw)),
        false,
        "no info lines at warn level",
      );
    } finally {
      await srv.stop();
    }
  });
});
