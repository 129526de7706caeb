// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the end-to-end tests: one real `nstance-server` process on a file bucket with
 * the `local` provider, so every instance is a real `nstance-agent` process (spawned by the
 * server, detached, outliving a server restart). Gives the tests what an operator has: the admin
 * CLI (in-process `runAdmin`, with a directly minted operator identity), the agents' directories
 * and JSON logs, and a read-only view of the server's SQLite cache.
 */
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import type { JSONPath } from "jsonc-parser";
import { runAdmin } from "../../src/admin/main.js";
import { defaultAgentCommand, LocalProvider } from "../../src/providers/local/local-provider.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import {
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../support/shard-servers.js";

/** Cluster and shard of examples/local.jsonc. */
export const FLEET_CLUSTER = "local";
/** Shard of examples/local.jsonc, and its storage prefix. */
export const FLEET_SHARD = "local";
/** Bound of the fleet's waits for things that take seconds (start, register, deliver). */
export const FLEET_WAIT_MS = 90_000;

/** One admin run: exit code and what it printed. */
export interface AdminRun {
  code: number;
  out: string;
  err: string;
}

/** A live instance as the server's SQLite cache has it. */
export interface FleetInstance {
  id: string;
  groupKey: string;
  registeredAt: number | null;
  /** The last stored health report (seed 003 JSON), parsed. */
  health: Record<string, unknown> | undefined;
}

/** Options for {@link startLocalFleet}. */
export interface LocalFleetOptions {
  /** Temp directory of the test (bucket, cache, instances, identity live below it). */
  dir: string;
  /** Edits of examples/local.jsonc after the fleet's own (election timings, provider options). */
  edits?: Array<[JSONPath, unknown]>;
  /** `NSTANCE_*` variables every agent gets (e.g. `NSTANCE_METRICS_INTERVAL`). */
  agentEnv?: Record<string, string>;
}

/** The running fleet; see the file comment. */
export class LocalFleet {
  readonly dir: string;
  readonly bucket: string;
  /** The local provider's state directory (`instances/{id}/…`). */
  readonly stateDir: string;
  readonly identityDir: string;
  readonly server: ShardServer;
  #db: BetterSqlite3.Database | undefined;

  private constructor(dir: string, server: ShardServer) {
    this.dir = dir;
    this.bucket = join(dir, "bucket");
    this.stateDir = join(dir, "local");
    this.identityDir = join(dir, "operator");
    this.server = server;
  }

  /**
   * Writes the shard config, starts the server, waits for its leadership and mints an operator
   * identity from the CA key in the bucket (the admin's direct mode).
   */
  static async start(opts: LocalFleetOptions): Promise<LocalFleet> {
    const stateDir = join(opts.dir, "local");
    const bucket = join(opts.dir, "bucket");
    // `env` puts the test's variables into the agent's environment, after the provider's own.
    const command = [
      "/usr/bin/env",
      ...Object.entries(opts.agentEnv ?? {}).map(([k, v]) => `${k}=${v}`),
      ...defaultAgentCommand(),
    ];
    await writeShardConfig(
      bucket,
      await shardConfigText([
        ...STEADY_ELECTION,
        [["shard", "infra", "options"], { state_dir: stateDir, command }],
        ...(opts.edits ?? []),
      ]),
    );
    const [server] = await startShardServers({
      count: 1,
      workDir: opts.dir,
      storageArgs: ["--storage", "file", "--bucket", bucket],
    });
    const fleet = new LocalFleet(opts.dir, server!);
    try {
      await fleet.#becomeReady(bucket);
    } catch (err) {
      // A fleet that never became ready is still torn down: its server and agents would hang the file.
      await fleet.stop().catch(() => {});
      throw err;
    }
    return fleet;
  }

  async #becomeReady(bucket: string): Promise<void> {
    await waitForSingleLeader([this.server], 60_000);
    const reg = await this.admin([
      "cluster",
      "register-operator",
      "--storage",
      "file",
      "--bucket",
      bucket,
      "--encryption-key-env",
      "NSTANCE_ENCRYPTION_KEY",
      "--identity-dir",
      this.identityDir,
    ]);
    if (reg.code !== 0) throw new Error(`register-operator exited ${reg.code}: ${reg.err}`);
  }

  /**
   * Stops the server gracefully (its agents keep running, as VMs would) and starts it again with
   * the same ID, ports and cache; resolves once it leads again.
   */
  async restartServer(): Promise<{ stoppedAt: number; leaderAt: number }> {
    this.#closeDb();
    await this.server.proc.stop();
    const stoppedAt = Date.now();
    this.server.restart();
    const { at } = await waitForSingleLeader([this.server], 60_000);
    return { stoppedAt, leaderAt: at };
  }

  /** Runs nstance-admin in-process with the test encryption key in its environment. */
  async admin(argv: string[], stdin?: string): Promise<AdminRun> {
    let out = "";
    let err = "";
    const code = await runAdmin(argv, {
      env: { NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      ...(stdin !== undefined ? { readStdin: async () => stdin } : {}),
    });
    return { code, out, err };
  }

  /** Runs a shard command (Operator API) against this server with the operator identity. */
  shardAdmin(...argv: string[]): Promise<AdminRun> {
    return this.admin([
      ...argv,
      "--servers",
      `${FLEET_SHARD}=localhost:${this.server.ports.operator}`,
      "--identity-dir",
      this.identityDir,
    ]);
  }

  /** A read-only handle on the server's SQLite cache (WAL: sees every committed write). */
  get db(): BetterSqlite3.Database {
    this.#db ??= new BetterSqlite3(join(this.dir, `cache-${this.server.id}`, "db", "nstance.db"), {
      readonly: true,
    });
    return this.#db;
  }

  #closeDb(): void {
    this.#db?.close();
    this.#db = undefined;
  }

  /** Live (not deleted) instances, oldest first. */
  instances(): FleetInstance[] {
    const rows = this.db
      .prepare(
        "SELECT id, group_key, registered_at, health FROM instances WHERE deleted_at IS NULL ORDER BY created_at, id",
      )
      .all() as Array<{
      id: string;
      group_key: string;
      registered_at: number | null;
      health: string | null;
    }>;
    return rows.map((r) => ({
      id: r.id,
      groupKey: r.group_key,
      registeredAt: r.registered_at,
      health: r.health ? (JSON.parse(r.health) as Record<string, unknown>) : undefined,
    }));
  }

  /** The group's runtime config hash as the server computed it. */
  runtimeHash(groupKey: string, tenant = "default"): string | undefined {
    const r = this.db
      .prepare("SELECT runtime_config_hash FROM groups WHERE tenant = ? AND group_key = ?")
      .get(tenant, groupKey) as { runtime_config_hash: string } | undefined;
    return r?.runtime_config_hash;
  }

  /** Decisions recorded for an instance, oldest first. */
  decisions(instanceId: string): Array<{ decision: string; reason: string; evidence: string }> {
    return this.db
      .prepare(
        "SELECT decision, reason, evidence FROM decisions WHERE instance_id = ? ORDER BY seq",
      )
      .all(instanceId) as Array<{ decision: string; reason: string; evidence: string }>;
  }

  /** An instance's directory (identity/, keys/, recv/, meta.json, agent.log). */
  instanceDir(instanceId: string): string {
    return join(this.stateDir, "instances", instanceId);
  }

  /** The agent's JSON log lines so far (an instance that has not started yet has none). */
  async agentLog(instanceId: string): Promise<Array<Record<string, unknown>>> {
    let text: string;
    try {
      text = await readFile(join(this.instanceDir(instanceId), "agent.log"), "utf8");
    } catch {
      return [];
    }
    const lines: Array<Record<string, unknown>> = [];
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
    return lines;
  }

  /** The PID of an instance's agent process (from the provider's meta.json). */
  async agentPid(instanceId: string): Promise<number> {
    const meta = JSON.parse(
      await readFile(join(this.instanceDir(instanceId), "meta.json"), "utf8"),
    ) as { pid?: number };
    if (meta.pid === undefined) throw new Error(`instance ${instanceId} has no process yet`);
    return meta.pid;
  }

  /** The last log lines of the server and of each live agent, for assertion messages. */
  async recent(): Promise<string> {
    const parts = [
      `--- server ---\n${this.server.proc.logs
        .slice(-25)
        .map((l) => JSON.stringify(l))
        .join("\n")}`,
    ];
    for (const i of this.instances()) {
      const log = await this.agentLog(i.id);
      parts.push(
        `--- agent ${i.id} ---\n${log
          .slice(-10)
          .map((l) => JSON.stringify(l))
          .join("\n")}`,
      );
    }
    return `\n${parts.join("\n")}`;
  }

  /**
   * Stops the server, then the agents (they outlive the server by design; the local provider
   * over the same directory deletes them by PID), and removes the directory.
   */
  async stop(): Promise<void> {
    this.#closeDb();
    await this.server.proc.stop();
    const local = new LocalProvider({ stateDir: this.stateDir, stopGraceMs: 2_000 });
    const running = await local.listInstances({ clusterId: FLEET_CLUSTER, shard: FLEET_SHARD });
    await Promise.all(running.map((i) => local.deleteInstance(i.instanceId, i.providerInstanceId)));
    await local.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
