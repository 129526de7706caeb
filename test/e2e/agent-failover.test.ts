// SPDX-License-Identifier: Apache-2.0
// Agents follow a failover promptly (the chaos soak's silent-agent replacement): an HA pair of real
// servers (STEADY election) with real agents that carry both Agent addresses; the leader is killed
// with SIGKILL. Each agent's health stream meets the dead leader and then the standby (which still
// names the dead leader until its lease runs out); the backoff is per server and a standby's
// refusal sends the stream on at once, so the health reports reach the new leader within seconds
// of its election, well before the missed-report threshold, and the new leader replaces nothing.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ShardServer } from "../support/shard-servers.js";
import { waitForSingleLeader } from "../support/shard-servers.js";
import { FLEET_WAIT_MS } from "./local-fleet.js";
import { readFleetDecisions, readFleetRows, readLocalAgents } from "./local-fleet-fixture.js";
import { HaFleet, healthGet, pollUntil } from "./rolling-upgrade-fixture.js";

/** The dynamic group the agents run in (created once both servers are in the address book). */
const GROUP = "failover";
const SIZE = 2;
/**
 * Bound from the new leader's election to every agent's report stored there. Before the fix the
 * health stream sat in a 20–70 s backoff; now it is about one 5 s backoff. The missed-report
 * threshold is 3 × 10 s (examples/local.jsonc), plus the new leader's reconnect grace.
 */
const REPORT_BOUND_MS = 20_000;
/** How long both servers must be in the leader's view before the group is created: two heartbeats. */
const PEER_KNOWN_MS = 11_000;
/** Decisions that replace, drain or remove an instance, or add a new one. */
const ACTING = /create|delete|drain|replace|vanish|unhealthy/;

interface ClusterView {
  role?: string;
  cluster?: { healthy_servers?: number };
}

/** The parsed JSON lines of an agent's log in the local provider's state dir. */
async function agentLog(stateDir: string, id: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(stateDir, "instances", id, "agent.log"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("agents after a leader is killed", { concurrency: false }, () => {
  let ha: HaFleet;
  let leader: ShardServer;
  let standby: ShardServer;
  let ids: string[] = [];

  before(async () => {
    ha = await HaFleet.start({ name: "agent-failover", size: 0 });
    leader = (await waitForSingleLeader(ha.servers, FLEET_WAIT_MS)).leader;
    standby = ha.servers.find((s) => s !== leader)!;
    // New agents get the addresses of the servers in the leader's address book, refreshed every
    // heartbeat: wait until both servers have been in the leader's view for two heartbeats.
    let bothSince: number | undefined;
    await pollUntil("both servers known to the leader for two heartbeats", async () => {
      const c = (await healthGet(leader, "/cluster")).body as ClusterView | undefined;
      if (c?.role !== "leader" || c.cluster?.healthy_servers !== 2) {
        bothSince = undefined;
        return false;
      }
      bothSince ??= Date.now();
      return Date.now() - bothSince >= PEER_KNOWN_MS;
    });
    const created = await ha.pairAdmin(
      ...["group", "create", GROUP, "--template", "web", "--size", String(SIZE)],
    );
    assert.equal(created.code, 0, created.err);
    await pollUntil("the group registered and reporting", () => {
      const db = ha.db(leader);
      const live = db
        ? readFleetRows(db).filter((r) => r.group === GROUP && r.deletedAt === undefined)
        : [];
      ids = live.map((r) => r.id).sort();
      return live.length === SIZE && live.every((r) => r.healthAt !== undefined);
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}${ha.recent()}`);
    });
  });

  after(async () => {
    await ha?.stop();
  });

  it("every agent carries both Agent addresses, its leader's first", async () => {
    for (const id of ids) {
      const start = (await agentLog(ha.stateDir, id)).find((l) => l.msg === "Starting agent");
      assert.deepEqual(
        start?.agent_addrs,
        [`localhost:${leader.ports.agent}`, `localhost:${standby.ports.agent}`],
        `${id}'s agent addresses`,
      );
    }
  });

  it("reports reach the new leader within seconds of the election; nothing is replaced", async (t) => {
    const agentsBefore = (await readLocalAgents(ha.stateDir)).filter((a) => a.group === GROUP);
    ha.closeDb(leader);
    const killedAt = Date.now();
    const exit = await leader.proc.stop("SIGKILL");
    assert.equal(exit, "SIGKILL");
    const elected = await waitForSingleLeader(ha.servers, FLEET_WAIT_MS);
    assert.equal(elected.leader, standby, "the standby took over");
    const newLeader = standby;

    let rows = readFleetRows(ha.db(newLeader)!);
    await pollUntil(
      "every agent's report stored by the new leader",
      () => {
        const db = ha.db(newLeader);
        rows = db ? readFleetRows(db).filter((r) => ids.includes(r.id)) : [];
        return rows.length === SIZE && rows.every((r) => (r.healthAt ?? 0) > killedAt);
      },
      3 * FLEET_WAIT_MS,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(rows)}${ha.recent()}`);
    });
    const lastReportAt = Math.max(...rows.map((r) => r.healthAt!));
    const afterElectionMs = lastReportAt - elected.at;
    t.diagnostic(
      `leader killed; new leader seen after ${elected.at - killedAt} ms; every agent's report stored ${afterElectionMs} ms after that (${lastReportAt - killedAt} ms after the kill)`,
    );
    for (const id of ids) {
      const log = await agentLog(ha.stateDir, id);
      const retries = log.filter(
        (l) => l.stream === "health" && Date.parse(String(l.time)) >= killedAt,
      );
      t.diagnostic(
        `${id} health stream: ${retries.map((l) => `${String(l.msg)} ${String(l.addr ?? l.to ?? "")} ${String(l.retry_in_ms ?? "")}`).join(" | ")}`,
      );
    }
    assert.ok(
      afterElectionMs < REPORT_BOUND_MS,
      `reports reached the new leader ${afterElectionMs} ms after its election`,
    );

    // Nothing replaced: the same rows, the same agent processes, no acting decision.
    assert.deepEqual(rows.map((r) => r.id).sort(), ids, "the new leader has the same instances");
    assert.ok(rows.every((r) => r.deletedAt === undefined));
    const acted = readFleetDecisions(ha.db(newLeader)!).filter(
      (d) => ids.includes(d.instanceId) && ACTING.test(d.decision) && d.at > killedAt,
    );
    assert.deepEqual(acted, [], "the new leader recorded no replacement decision");
    const agentsAfter = (await readLocalAgents(ha.stateDir)).filter((a) => a.group === GROUP);
    assert.deepEqual(
      agentsAfter.map((a) => [a.id, a.pid, a.alive]),
      agentsBefore.map((a) => [a.id, a.pid, true]),
      "the same agent processes",
    );
  });
});
