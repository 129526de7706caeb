// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the failure detection end-to-end tests (issue 7): a {@link LocalFleet} whose
 * agents report every second, with failure detection timings made for tests, and a way to give
 * only the first (second …) agent the server creates an environment of its own: an agent address
 * through a TCP proxy (a network partition of that agent alone), or a metadata service that
 * announces a spot termination. Replacements get neither, so one fault hits one instance.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONPath } from "jsonc-parser";
import { defaultAgentCommand } from "../../src/providers/local/local-provider.js";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { LocalFleet } from "./local-fleet.js";

/** The group of examples/local.jsonc. */
export const GROUP = "web";
/**
 * Bound of the detection tests' waits: generous, because a leadership change under CI load (the
 * single server's lease lapsing and coming back) gives every agent the new leader has not heard
 * from its 75 s reconnect grace before silence counts again.
 */
export const DETECTION_WAIT_MS = 240_000;
/** Agent report interval, and the server's `health_check_interval`. */
export const REPORT_INTERVAL_MS = 1_000;

/**
 * Failure detection for tests: a 1 s sweep, and keepalive and missed-report bounds generous enough
 * that an agent starved of CPU on a busy CI machine (its pings late, its stream dropped and
 * reopened after the agent's 5 s backoff) is not taken for a dead one.
 */
export const TEST_FAILURE_DETECTION = {
  sweep_interval: "1s",
  missed_reports: 8,
  keepalive_time: "2s",
  keepalive_timeout: "3s",
};

/** A recorded decision, as the tests read it. */
export interface Decision {
  at: number;
  decision: string;
  reason: string;
  evidence: Record<string, unknown>;
}

/** Options for {@link startDetectionFleet}. */
export interface DetectionFleetOptions {
  /** Group size. Defaults to 3. */
  size?: number;
  /** Group `drain_timeout`. Defaults to 2 s (nobody acknowledges drains here). */
  drainTimeout?: string;
  /** Overrides of {@link TEST_FAILURE_DETECTION}. */
  failureDetection?: Record<string, unknown>;
  /**
   * Environment of the first, second … agent the server creates (and of no other); see also
   * {@link agentEnvFile} under `fleet.dir`.
   */
  firstAgents?: Array<Record<string, string>>;
  /**
   * Agents after those of `firstAgents` (replacements) wait this long before they start, as a
   * VM boots: the replaced instance stays unhealthy and undrained meanwhile. Defaults to 0.
   */
  laterBootDelayMs?: number;
  /** Further config edits. */
  edits?: Array<[JSONPath, unknown]>;
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The file whose `export NAME=value` lines the k-th agent spawned also reads, when it exists at
 * that moment (for values known only once the server runs, such as a proxy in front of it).
 */
export function agentEnvFile(dir: string, k: number): string {
  return join(dir, `agent-${k}.env`);
}

/** The lock directory the k-th agent spawned takes; it holds that agent's `instance-id`. */
function firstAgentLock(dir: string, k: number): string {
  return join(dir, `agent-${k}`);
}

/** The file of `export NAME=value` lines every agent reads when it exists as the agent starts. */
export function allAgentsEnvFile(dir: string): string {
  return join(dir, "agents.env");
}

/**
 * The agent command: a shell that hands the k-th agent spawned the k-th environment of
 * `firstAgents` and its {@link agentEnvFile} (`mkdir` is atomic, so each lock is taken once, and
 * the lock records the instance ID so a test can find which instance got which environment), makes every later agent wait `laterBootDelayMs` (a VM booting), gives every agent
 * {@link allAgentsEnvFile}, then runs the real agent.
 */
export function agentCommand(
  lockDir: string,
  firstAgents: Array<Record<string, string>>,
  laterBootDelayMs = 0,
): string[] {
  const all = quote(allAgentsEnvFile(lockDir));
  const base = `export NSTANCE_METRICS_INTERVAL=${REPORT_INTERVAL_MS}ms; if [ -f ${all} ]; then . ${all}; fi`;
  const branches = firstAgents.map((env, k) => {
    const file = quote(agentEnvFile(lockDir, k));
    const lock = quote(firstAgentLock(lockDir, k));
    const exports = [
      `echo "$NSTANCE_INSTANCE_ID" > ${lock}/instance-id`,
      ...Object.entries(env).map(([key, v]) => `export ${key}=${quote(v)}`),
      `if [ -f ${file} ]; then . ${file}; fi`,
    ];
    return `mkdir ${lock} 2>/dev/null; then ${exports.join("; ")}`;
  });
  const boot = laterBootDelayMs > 0 ? `sleep ${laterBootDelayMs / 1000}` : "";
  const pick =
    branches.length === 0
      ? boot && `${boot}; `
      : `if ${branches.join("; elif ")}${boot && `; else ${boot}`}; fi; `;
  return ["/bin/sh", "-c", `${base}; ${pick}exec "$@"`, "nstance-agent", ...defaultAgentCommand()];
}

/** The fleet and what the detection tests ask of it. */
export class DetectionFleet {
  readonly fleet: LocalFleet;

  constructor(fleet: LocalFleet) {
    this.fleet = fleet;
  }

  /** Every decision about an instance, oldest first. */
  history(id: string): Decision[] {
    const rows = this.fleet.db
      .prepare(
        "SELECT at, decision, reason, evidence FROM decisions WHERE instance_id = ? ORDER BY seq",
      )
      .all(id) as Array<{ at: number; decision: string; reason: string; evidence: string }>;
    return rows.map((r) => ({
      at: r.at,
      decision: r.decision,
      reason: r.reason,
      evidence: JSON.parse(r.evidence) as Record<string, unknown>,
    }));
  }

  /** The first decision named `name` about `id`, if any. */
  decision(id: string, name: string): Decision | undefined {
    return this.history(id).find((d) => d.decision === name);
  }

  /** True once the instance's row is soft-deleted. */
  deleted(id: string): boolean {
    const r = this.fleet.db.prepare("SELECT deleted_at FROM instances WHERE id = ?").get(id) as
      | { deleted_at: number | null }
      | undefined;
    return r?.deleted_at !== null && r?.deleted_at !== undefined;
  }

  /** IDs of live instances of the group whose agent reported after `sinceMs`, oldest first. */
  reportingSince(sinceMs: number): string[] {
    return this.fleet
      .instances()
      .filter(
        (i) =>
          i.groupKey === GROUP &&
          i.health !== undefined &&
          Date.parse(String(i.health.received_at)) > sinceMs,
      )
      .map((i) => i.id);
  }

  /** Live instances of the group, oldest first. */
  live(): string[] {
    return this.fleet
      .instances()
      .filter((i) => i.groupKey === GROUP)
      .map((i) => i.id);
  }

  /**
   * Polls `cond` until it holds; on timeout throws with the server's and agents' recent logs,
   * then every instance's decisions (last, so a truncated CI excerpt still shows them).
   */
  async until(what: string, cond: () => boolean, timeoutMs = DETECTION_WAIT_MS): Promise<void> {
    await waitFor(what, cond, timeoutMs).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await this.fleet.recent()}\n${this.decisionSummary()}`);
    });
  }

  /** One line per instance the database knows: first-agent slot, whether deleted, decisions. */
  decisionSummary(): string {
    const rows = this.fleet.db
      .prepare("SELECT id, deleted_at FROM instances ORDER BY issued_at")
      .all() as Array<{ id: string; deleted_at: number | null }>;
    const lines = rows.map((r) => {
      const k = this.firstAgentIndex(r.id);
      const story = this.history(r.id).map((d) => `${d.decision}(${d.reason})`);
      return `${r.id}${k === undefined ? "" : ` [agent-${k}]`}${r.deleted_at === null ? "" : " deleted"}: ${story.join(" ")}`;
    });
    return `--- decisions ---\n${lines.join("\n")}`;
  }

  /** Which of the `firstAgents` environments instance `id` got, if any. */
  firstAgentIndex(id: string): number | undefined {
    for (let k = 0; ; k++) {
      let recorded: string;
      try {
        recorded = readFileSync(join(firstAgentLock(this.fleet.dir, k), "instance-id"), "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
      if (recorded.trim() === id) return k;
    }
  }

  /**
   * Waits until `size` agents report, then picks the oldest live instance that got one of the
   * `firstAgents` environments, and which. A test gives several agents their own fault (a proxy,
   * a metadata service each), so an agent replaced while the fleet starts on a busy machine does
   * not leave the test without a target.
   */
  async firstAgentVictim(size: number): Promise<{ id: string; k: number }> {
    const live = await this.whole(size);
    for (const id of live) {
      const k = this.firstAgentIndex(id);
      if (k !== undefined) return { id, k };
    }
    throw new Error(
      `no live instance runs with a firstAgents environment (all replaced during setup)\n${this.decisionSummary()}`,
    );
  }

  /** Waits until `size` agents of the group report (every live instance, none left over). */
  async whole(size: number): Promise<string[]> {
    let ids: string[] = [];
    const since = Date.now();
    await this.until(`the group whole with ${size} reporting agents`, () => {
      const live = this.live();
      ids = this.reportingSince(since);
      return live.length === size && ids.length === size;
    });
    return this.live();
  }

  /** Asserts that the instance's history visits `names` in this order (other entries between). */
  assertStory(id: string, names: readonly string[]): Decision[] {
    const history = this.history(id);
    const found: Decision[] = [];
    let from = 0;
    for (const name of names) {
      const i = history.findIndex((d, k) => k >= from && d.decision === name);
      assert.ok(
        i >= 0,
        `${id}: "${name}" missing after ${JSON.stringify(found.map((d) => d.decision))} in ${JSON.stringify(
          history.map((d) => `${d.decision}(${d.reason})`),
        )}`,
      );
      found.push(history[i]!);
      from = i + 1;
    }
    return found;
  }

  /** Sets the group's size through the Operator API (`nstance-admin group scale`). */
  async scale(size: number): Promise<void> {
    const r = await this.fleet.shardAdmin("group", "scale", GROUP, String(size));
    assert.equal(r.code, 0, r.err);
  }

  /** Stops the server and every agent, and removes the directory. */
  stop(): Promise<void> {
    return this.fleet.stop();
  }
}

/** Starts a fleet for detection tests and waits until the whole group reports. */
export async function startDetectionFleet(
  opts: DetectionFleetOptions = {},
): Promise<DetectionFleet> {
  const dir = await mkdtemp(join(tmpdir(), "nstance-e2e-detection-"));
  const size = opts.size ?? 3;
  const fleet = await LocalFleet.start({
    dir,
    edits: [
      [
        ["shard", "infra", "options", "command"],
        agentCommand(dir, opts.firstAgents ?? [], opts.laterBootDelayMs),
      ],
      [["shard", "health_check_interval"], `${REPORT_INTERVAL_MS}ms`],
      [["shard", "failure_detection"], { ...TEST_FAILURE_DETECTION, ...opts.failureDetection }],
      [
        ["shard", "garbage_collection"],
        { interval: "2s", registration_timeout: "60s", deleted_record_retention: "1h" },
      ],
      [["groups", "default", GROUP, "size"], size],
      [["groups", "default", GROUP, "drain_timeout"], opts.drainTimeout ?? "2s"],
      ...(opts.edits ?? []),
    ],
  });
  const d = new DetectionFleet(fleet);
  try {
    await d.whole(size);
  } catch (err) {
    await fleet.stop();
    throw err;
  }
  return d;
}
