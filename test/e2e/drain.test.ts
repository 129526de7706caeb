// SPDX-License-Identifier: Apache-2.0
// Drain coordination and on-demand instances end to end (issue 6, seed 001): a real nstance-server
// process whose `local` instances are real nstance-agent processes, driven only through
// `nstance-admin` (in-process runAdmin). A dynamic group comes up; deleting it drains its
// instances: `instance drains` prints their pending_deletion notices, the acknowledged one
// (`instance ack`) is deleted at once, the other when its drain timeout passes, and the group is
// gone. On-demand instances are created, registered, listed and deleted by hand.
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runAdmin } from "../../src/admin/main.js";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { type AdminRun, FLEET_SHARD, FLEET_WAIT_MS, LocalFleet } from "./local-fleet.js";
import { readLocalAgents } from "./local-fleet-fixture.js";

/**
 * `default_drain_timeout`, which a deleted group's instances drain for. The acknowledgement comes
 * about a second after the notice; the timeout leaves it several times that.
 */
const DRAIN_MS = 8000;
const DRAIN_STEPS = new Set(["drain_notified", "drain_acked", "drain_timed_out", "deleted"]);

/** A drain notice as `instance drains --json` prints it. */
interface DrainLine {
  shard: string;
  instance_id: string;
  group: string;
  status: string;
  reason: string;
  unhealthy_at: string | null;
  delete_at: string | null;
}

/** `nstance-admin instance drains --json` running until stopped. */
interface FollowedDrains {
  lines(): DrainLine[];
  stop(): Promise<AdminRun>;
}

function followDrains(fleet: LocalFleet): FollowedDrains {
  const ac = new AbortController();
  let out = "";
  let err = "";
  const exited = runAdmin(
    [
      "instance",
      "drains",
      "--json",
      "--servers",
      `${FLEET_SHARD}=localhost:${fleet.server.ports.operator}`,
      "--identity-dir",
      fleet.identityDir,
    ],
    {
      env: { NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    },
    ac.signal,
  );
  return {
    lines: () =>
      out
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as DrainLine),
    stop: async () => {
      ac.abort();
      return { code: await exited, out, err };
    },
  };
}

describe("drains and on-demand instances end to end", { concurrency: false }, () => {
  let fleet: LocalFleet;

  const live = (group: string) => fleet.instances().filter((i) => i.groupKey === group);
  const deletedAt = (id: string): number | undefined =>
    (
      fleet.db.prepare("SELECT deleted_at FROM instances WHERE id = ?").get(id) as
        | { deleted_at: number | null }
        | undefined
    )?.deleted_at ?? undefined;
  const decisions = (id: string) => fleet.decisions(id).map((d) => d.decision);
  /** The drain decisions of an instance, in order (other decisions may fall between them). */
  const drainSteps = (id: string) => decisions(id).filter((d) => DRAIN_STEPS.has(d));
  const wait = (what: string, cond: () => boolean | Promise<boolean>) =>
    waitFor(what, cond, FLEET_WAIT_MS).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent().catch(() => "")}`);
    });
  const ok = (r: AdminRun, what: string): AdminRun => {
    assert.equal(r.code, 0, `${what} exited ${r.code}: ${r.err}`);
    return r;
  };

  before(async () => {
    fleet = await LocalFleet.start({
      dir: await mkdtemp(join(tmpdir(), "nstance-e2e-drain-")),
      edits: [
        [["groups", "default", "web", "size"], 0],
        [["shard", "default_drain_timeout"], `${DRAIN_MS}ms`],
      ],
      agentEnv: { NSTANCE_METRICS_INTERVAL: "1s" },
    });
  });
  after(async () => {
    await fleet?.stop();
  });

  it("deleting a group drains its instances: acked deleted at once, the other at its timeout", async (t) => {
    ok(
      await fleet.shardAdmin("group", "create", "batch", "--template", "web", "--size", "2"),
      "group create",
    );
    await wait(
      "2 batch instances registered",
      () => live("batch").length === 2 && live("batch").every((i) => i.registeredAt !== null),
    );
    const [a, b] = live("batch").map((i) => i.id) as [string, string];
    for (const id of [a, b]) assert.ok(decisions(id).includes("registered"), `${id} registered`);

    const drains = followDrains(fleet);
    t.after(() => drains.stop());
    ok(await fleet.shardAdmin("group", "delete", "batch"), "group delete");
    // The group is gone at once; its instances leave through drain.
    const status = await fleet.shardAdmin("group", "status", "batch");
    assert.equal(status.code, 4, `deleted group: ${status.out}${status.err}`);

    const pending = () => drains.lines().filter((l) => l.status === "pending_deletion");
    await wait("2 pending_deletion notices", () => pending().length >= 2);
    const notices = pending();
    t.diagnostic(`drain notices:\n${notices.map((n) => JSON.stringify(n)).join("\n")}`);
    assert.deepEqual(new Set(notices.map((n) => n.instance_id)), new Set([a, b]));
    for (const n of notices) {
      assert.equal(n.group, "batch");
      assert.equal(n.reason, "group-deleted");
      assert.equal(Date.parse(n.delete_at!) - Date.parse(n.unhealthy_at!), DRAIN_MS);
    }
    const deadlineB = Date.parse(notices.find((n) => n.instance_id === b)!.delete_at!);

    const acked = ok(await fleet.shardAdmin("instance", "ack", a), "instance ack");
    assert.match(acked.out, /acknowledged/);
    await wait("the acked instance deleted", () => deletedAt(a) !== undefined);
    assert.ok(deletedAt(b) === undefined || deletedAt(a)! < deletedAt(b)!, "a went first");
    await wait("the other deleted after its timeout", () => deletedAt(b) !== undefined);
    assert.ok(deletedAt(b)! >= deadlineB, "not before its deadline");
    await wait("2 deleted notices", () =>
      [a, b].every((id) =>
        drains.lines().some((l) => l.instance_id === id && l.status === "deleted"),
      ),
    );
    assert.deepEqual(drainSteps(a), ["drain_notified", "drain_acked", "deleted"]);
    assert.deepEqual(drainSteps(b), ["drain_notified", "drain_timed_out", "deleted"]);

    // Nothing of the group is left: no instance, no agent process, no group.
    await wait(
      "the batch agents stopped",
      async () =>
        (await readLocalAgents(fleet.stateDir)).filter((x) => x.group === "batch" && x.alive)
          .length === 0,
    );
    const groups = ok(await fleet.shardAdmin("group", "list", "--json"), "group list");
    assert.doesNotMatch(groups.out, /"batch"/);
    const listed = ok(await fleet.shardAdmin("instance", "list", "--json"), "instance list");
    const rows = (
      JSON.parse(listed.out) as {
        results: Array<{ instances: Array<{ instance_id: string; status: string }> }>;
      }
    ).results[0]!.instances.filter((i) => i.instance_id === a || i.instance_id === b);
    assert.ok(
      rows.every((i) => i.status === "deleted"),
      `listed as deleted: ${JSON.stringify(rows)}`,
    );

    const followed = await drains.stop();
    assert.equal(followed.code, 0, `instance drains ended with ${followed.code}: ${followed.err}`);
  });

  it("creates, shows and deletes an on-demand instance", async (t) => {
    const created = ok(
      await fleet.shardAdmin("instance", "create", "web", "--var", "purpose=debug", "--json"),
      "instance create",
    );
    const id = (
      JSON.parse(created.out) as { results: Array<{ instance: { instance_id: string } }> }
    ).results[0]!.instance.instance_id;
    assert.match(id, /^web[0-9a-z]{26}$/);
    await wait("the on-demand agent registered", () =>
      fleet.instances().some((i) => i.id === id && i.registeredAt !== null),
    );

    const listed = ok(await fleet.shardAdmin("instance", "list", "--json"), "instance list");
    const mine = (
      JSON.parse(listed.out) as {
        results: Array<{ instances: Array<{ instance_id: string; on_demand: boolean }> }>;
      }
    ).results[0]!.instances.find((i) => i.instance_id === id);
    assert.equal(mine?.on_demand, true);
    const shown = ok(await fleet.shardAdmin("instance", "status", id), "instance status");
    t.diagnostic(`instance status →\n${shown.out}`);
    assert.match(shown.out, /create_requested\s+on-demand/);
    assert.match(shown.out, /registered/);

    // It is not draining: an acknowledgement is refused (exit 1) and changes nothing.
    const refused = await fleet.shardAdmin("instance", "ack", id);
    assert.equal(refused.code, 1, refused.err);
    assert.match(refused.err, /not draining/);

    const deleted = ok(await fleet.shardAdmin("instance", "delete", id), "instance delete");
    assert.match(deleted.out, /deleted/);
    assert.ok(deletedAt(id) !== undefined);
    await wait(
      "its agent stopped",
      async () => !(await readLocalAgents(fleet.stateDir)).some((x) => x.id === id && x.alive),
    );
    assert.match(ok(await fleet.shardAdmin("instance", "delete", id), "again").out, /unknown/);
    const missing = await fleet.shardAdmin("instance", "status", "web0000000000000000000000000");
    assert.equal(missing.code, 4, missing.err);
  });
});
