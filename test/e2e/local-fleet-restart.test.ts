// SPDX-License-Identifier: Apache-2.0
// Issue 6 "Done when", end to end with the `local` provider: kill -9 the server, delete its
// --cachedir, restart it. The cache is rebuilt from the instance records in the bucket and the
// provider's list: the same instances (same IDs, same agent processes) come back under the new
// server, the agents report to it, and nothing is created or deleted, not even once the
// registration timeout has passed (restored rows keep their registration).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { waitForSingleLeader } from "../support/shard-servers.js";
import {
  FLEET_GROUP,
  type FleetRow,
  holdsFor,
  type LocalAgent,
  TestFleet,
} from "./local-fleet-fixture.js";

const SIZE = 3;
/** Garbage collection deletes instances not registered after this long: the window to outlast. */
const REGISTRATION_TIMEOUT_MS = 15_000;
const GC_INTERVAL_MS = 2_000;

describe("local fleet: kill -9, cache deleted, restart", { concurrency: false }, () => {
  let tf: TestFleet;
  let first: FleetRow[] = [];
  let agentsBefore: LocalAgent[] = [];

  before(async () => {
    tf = await TestFleet.start({
      name: "restart",
      size: SIZE,
      edits: [
        [
          ["shard", "garbage_collection"],
          {
            interval: `${GC_INTERVAL_MS / 1000}s`,
            registration_timeout: `${REGISTRATION_TIMEOUT_MS / 1000}s`,
            deleted_record_retention: "1h",
          },
        ],
      ],
    });
    first = await tf.waitSettled(SIZE);
    agentsBefore = await tf.agents();
  });
  after(async () => {
    await tf?.stop();
  });

  it("comes back with the same instances and agent processes, creating and losing none", async (t) => {
    const ids = first.map((r) => r.id).sort();
    assert.deepEqual(
      agentsBefore.map((a) => a.id),
      ids,
    );
    const recordsBefore = await tf.records();
    assert.deepEqual([...recordsBefore.keys()].sort(), ids, "one record per instance");

    await tf.killServerAndDropCache();
    const agentsAlone = await tf.agents();
    assert.ok(
      agentsAlone.every((a) => a.alive),
      "agents outlive the server (detached processes)",
    );

    const restartAt = Date.now();
    tf.restartServer();
    const server = tf.fleet.server;
    const led = await waitForSingleLeader([server], 60_000);
    t.diagnostic(`leader again ${led.at - restartAt} ms after the restart`);
    const rebuilt = await server.proc.waitLog((l) => l.msg === "Instance cache rebuilt", 60_000);
    t.diagnostic(`rebuilt: ${JSON.stringify(rebuilt)}`);
    assert.equal(rebuilt.records, SIZE);
    assert.equal(rebuilt.rows_restored, SIZE);
    assert.equal(rebuilt.provider_instances, SIZE);
    assert.equal(rebuilt.marked_deleted, 0);
    assert.equal(rebuilt.unknown_vms, 0);
    assert.equal(rebuilt.deleted_vms_removed, 0);

    // Every agent finds the new server and reports to it.
    await tf.waitFor("every agent reporting to the restarted server", () => {
      const live = tf.live();
      return live.length === SIZE && live.every((r) => (r.healthAt ?? 0) > restartAt);
    });
    t.diagnostic(`all ${SIZE} agents reported ${Date.now() - restartAt} ms after the restart`);

    // Nothing changes, even past the registration timeout (plus two GC passes) after the restart:
    // the restored rows are registered, so garbage collection leaves them alone.
    const sameFleet = async () => {
      const rows = tf.rows();
      const agents = await tf.agents();
      return (
        rows.length === SIZE &&
        rows.every((r) => r.deletedAt === undefined && ids.includes(r.id)) &&
        agents.length === SIZE &&
        agents.every((a, i) => a.alive && a.pid === agentsBefore[i]!.pid)
      );
    };
    await holdsFor(
      "the same three instances and agent processes",
      sameFleet,
      Math.max(0, restartAt + REGISTRATION_TIMEOUT_MS + 2 * GC_INTERVAL_MS - Date.now()),
    ).catch(async (err: unknown) => {
      throw new Error(
        `${String(err)}: rows ${JSON.stringify(tf.rows())}, agents ${JSON.stringify(await tf.agents())}`,
      );
    });

    const rows = tf.rows();
    assert.deepEqual(rows.map((r) => r.id).sort(), ids, "the same IDs, no duplicate");
    assert.ok(
      rows.every((r) => r.registeredAt !== undefined),
      "restored rows keep their registration",
    );
    const agentsAfter = await tf.agents();
    assert.deepEqual(
      agentsAfter.map((a) => [a.id, a.pid, a.startTicks, a.alive]),
      agentsBefore.map((a) => [a.id, a.pid, a.startTicks, true]),
      "the same agent processes",
    );
    const acted = tf
      .decisions()
      .filter((d) => /create|delete|drain|replace|vanish/.test(d.decision));
    assert.deepEqual(acted, [], "no instance created, drained or deleted after the restart");
    const records = await tf.records();
    assert.deepEqual([...records.keys()].sort(), ids, "no new record");
    assert.ok(
      [...records.values()].every((r) => r.status !== "deleting"),
      "no record marked deleting",
    );
    const status = await tf.groupStatus();
    assert.equal(status.actual_size, SIZE);
    assert.deepEqual(
      [...status.provider_ids].sort(),
      ids.map((id) => `nstance-agent-${id}`),
      `the operator sees the same ${FLEET_GROUP} instances`,
    );
  });

  it("kept every invariant throughout", async (t) => {
    await tf.sampler.sample();
    t.diagnostic(
      `${tf.sampler.samples} samples, at most ${tf.sampler.maxAliveAgents} agents alive at once`,
    );
    assert.equal(tf.sampler.maxAliveAgents, SIZE);
    assert.deepEqual(tf.sampler.violations, []);
    assert.deepEqual(tf.historyViolations(), []);
  });
});
