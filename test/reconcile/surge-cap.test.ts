// SPDX-License-Identifier: Apache-2.0
/**
 * The size + 1 cap through stacked replacements (chaos soak seed 422688475): instance A goes
 * silent, its replacement B is created, and B fails before A is gone. B is deleted first and A is
 * replaced again; no third instance is created while A and B both exist. Also across a leader
 * change, where the new leader knows only what SQLite and storage hold (the old term's in-flight
 * work was in its memory), and for a server whose stale cache held an instance another term
 * deleted.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { JSONPath } from "jsonc-parser";
import { getLiveInstance } from "../../src/db/instance-lifecycle.js";
import {
  getInstance,
  listInstanceDecisions,
  markInstanceRegistered,
} from "../../src/db/instances-table.js";
import { FakeProvider } from "../../src/providers/fake/fake-provider.js";
import type { ExecutedAction } from "../../src/reconcile/reconciler.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { FileStorage } from "../../src/storage/file-storage.js";
import {
  PREFIX,
  type ReconcileFixture,
  startReconcileFixture,
  waitFor,
} from "./reconcile-fixture.js";

const SIZE = 2;
const EDITS: Array<[JSONPath, unknown]> = [[["groups", "default", "web", "size"], SIZE]];
const SILENT = { reason: "missed-reports", skipDrain: false } as const;
const DEAD = { reason: "stopped", skipDrain: true } as const;

/** Marks an instance registered, as RegisterAgent would, and tells the reconciler. */
function register(f: ReconcileFixture, id: string): void {
  assert.ok(
    markInstanceRegistered(f.db, {
      id,
      registeredAt: Date.now(),
      instancePub: "test-key",
      certSerial: "1",
    }),
    `register ${id}`,
  );
  f.mgmt?.reconciler.instanceChanged(id);
}

/** Records, at every create that completes, the live rows of the group (the instances that exist). */
function createWatch(f: () => ReconcileFixture | undefined): {
  onAction: (e: ExecutedAction) => void;
  seen: Array<{ created: string; live: string[] }>;
} {
  const seen: Array<{ created: string; live: string[] }> = [];
  return {
    seen,
    onAction: (e) => {
      const fx = f();
      if (!fx || e.action.kind !== "create" || e.outcome !== "done") return;
      seen.push({ created: e.instanceId, live: fx.live().map((r) => r.id) });
    },
  };
}

/** Starts a fixture whose agents register only when the test says, at size {@link SIZE}. */
async function start(
  over: Parameters<typeof startReconcileFixture>[0] = {},
  watch?: ReturnType<typeof createWatch>,
): Promise<ReconcileFixture> {
  return startReconcileFixture({
    configEdits: EDITS,
    registerAfterMs: undefined,
    ackAfterMs: 5,
    ...over,
    // Two unhealthy at size 2 would trip the default mass-failure guard (which pauses all).
    tuning: {
      guard: { maxUnhealthyFraction: 1, maxUnhealthyCount: SIZE },
      ...(watch ? { onAction: watch.onAction } : {}),
    },
  });
}

/** Waits for the group's two instances and registers them; returns them oldest first. */
async function settle(f: ReconcileFixture): Promise<[string, string]> {
  await waitFor("2 instances", () => f.live().length === SIZE);
  await f.reconciler().whenIdle();
  const [x, a] = f.live().map((r) => r.id) as [string, string];
  register(f, x);
  register(f, a);
  await f.reconciler().whenIdle();
  return [x, a];
}

/** The id A's row names as its replacement, once it does. */
async function replacementOf(f: ReconcileFixture, a: string): Promise<string> {
  await waitFor(`a replacement of ${a}`, () => getLiveInstance(f.db, a)?.replacedBy !== undefined);
  await f.reconciler().whenIdle();
  return getLiveInstance(f.db, a)!.replacedBy!;
}

/** No create completed while more than size + 1 instances of the group existed. */
function assertCap(seen: Array<{ created: string; live: string[] }>): void {
  for (const s of seen) {
    assert.ok(
      s.live.length <= SIZE + 1,
      `${s.live.length} instances when ${s.created} was created (size ${SIZE}): ${s.live.join(", ")}`,
    );
  }
}

/**
 * B (A's replacement) fails with `verdict` while A still exists: B is deleted with no replacement
 * of its own, then C replaces A and A leaves once C is ready. Returns C.
 */
async function failReplacement(
  f: ReconcileFixture,
  seen: Array<{ created: string; live: string[] }>,
  ids: { x: string; a: string; b: string },
  verdict: typeof SILENT | typeof DEAD,
): Promise<string> {
  const { x, a, b } = ids;
  assert.ok(f.reconciler().markUnhealthy(b, verdict));
  await waitFor("B deleted", () => getInstance(f.db, b)?.deletedAt !== undefined);
  await f.reconciler().whenIdle();
  assertCap(seen);
  const c = await replacementOf(f, a);
  assert.notEqual(c, b, "A is replaced again");
  assert.ok(
    getInstance(f.db, c)!.createdAt >= getInstance(f.db, b)!.deletedAt!,
    "C is created only after B is gone",
  );
  assert.equal(
    listInstanceDecisions(f.db, b).find((d) => d.decision === "replacement_started"),
    undefined,
    "B itself gets no replacement",
  );
  register(f, c);
  await waitFor("A replaced by C", () => getInstance(f.db, a)?.deletedAt !== undefined);
  await f.reconciler().whenIdle();
  assert.deepEqual(
    f.live().map((r) => r.id),
    [x, c],
  );
  assertCap(seen);
  assert.deepEqual(f.checker.violations, []);
  return c;
}

/** A group at size with A silent and its replacement B created (not registered yet). */
async function replacingA(): Promise<{
  f: ReconcileFixture;
  seen: Array<{ created: string; live: string[] }>;
  ids: { x: string; a: string; b: string };
}> {
  let fx: ReconcileFixture | undefined;
  const watch = createWatch(() => fx);
  const f = await start({}, watch);
  fx = f;
  try {
    const [x, a] = await settle(f);
    assert.ok(f.reconciler().markUnhealthy(a, SILENT));
    const b = await replacementOf(f, a);
    return { f, seen: watch.seen, ids: { x, a, b } };
  } catch (err) {
    await f.close();
    throw err;
  }
}

describe("size + 1 through stacked replacements", () => {
  for (const [what, verdict] of [
    ["stops (provider: stopped)", DEAD],
    ["goes silent", SILENT],
  ] as const) {
    it(`A silent → B created → B ${what} before A is gone: B goes first, then C replaces A`, async () => {
      const { f, seen, ids } = await replacingA();
      try {
        assert.ok(getLiveInstance(f.db, ids.b), "B exists");
        assert.ok(getLiveInstance(f.db, ids.a), "A waits for B to be ready");
        // B fails before it took over.
        await failReplacement(f, seen, ids, verdict);
        assert.ok((f.checker.maxCounted.get("default/web") ?? 0) <= SIZE + 1);
      } finally {
        await f.close();
      }
    });
  }

  it("across a leader change (same SQLite, in-flight work forgotten): no C while A and B exist", async () => {
    const { f, seen, ids } = await replacingA();
    const { a, b } = ids;
    try {
      // The term ends; the next term starts with nothing in memory.
      await f.stopManagement();
      f.term.advance();
      await f.start();
      await f.reconciler().whenIdle();
      assert.ok(getLiveInstance(f.db, a) && getLiveInstance(f.db, b), "A and B both still exist");

      await failReplacement(f, seen, ids, DEAD);
    } finally {
      await f.close();
    }
  });

  it("across a leader change to another server (rebuilt from storage): never above size + 1", async () => {
    const root = await mkdtemp(join(tmpdir(), "nstance-surge-"));
    const storage = new FileStorage({ dir: join(root, "bucket"), fsync: false });
    const provider = new FakeProvider({ createDelayMs: 0, deleteDelayMs: 0 });
    let fx: ReconcileFixture | undefined;
    const watch = createWatch(() => fx);
    try {
      const first = await start({ storage, provider, cachedir: join(root, "cache-1") }, watch);
      fx = first;
      let a: string;
      let b: string;
      let x: string;
      try {
        [x, a] = await settle(first);
        assert.ok(first.reconciler().markUnhealthy(a, SILENT));
        b = await replacementOf(first, a);
      } finally {
        await first.close();
      }

      // Server 2 leads; its cache comes from storage and the provider only. It does not know A was
      // unhealthy, but storage says B replaces A: A (not a bystander) is the one to go.
      const second = await start(
        { storage, provider, cachedir: join(root, "cache-2"), start: false },
        watch,
      );
      fx = second;
      try {
        second.term.advance();
        second.term.advance();
        const mgmt = await second.start();
        assert.equal(mgmt.rebuild.rowsRestored, 3);
        assert.equal(getLiveInstance(second.db, a)?.replacedBy, b);
        // One too many for size 2: A (whose replacement exists), not the bystander X, leaves.
        await waitFor("A leaving", () => {
          const row = getInstance(second.db, a);
          return row?.drainStartedAt !== undefined || row?.deletedAt !== undefined;
        });
        assert.equal(getInstance(second.db, x)?.drainStartedAt, undefined);
        assert.ok(second.reconciler().markUnhealthy(b, DEAD));
        await waitFor("A and B gone", () =>
          [a, b].every((id) => getInstance(second.db, id)?.deletedAt !== undefined),
        );
        await waitFor("back at size", () => second.live().length === SIZE);
        await second.reconciler().whenIdle();
        const live = second.live().map((r) => r.id);
        assert.ok(live.includes(x), "the healthy bystander stays");
        assert.ok(!live.includes(a) && !live.includes(b));
        assertCap(watch.seen);
        // This checker saw no create of B (the first server made it): replacement first is
        // checked on the rows instead.
        assert.ok(getInstance(second.db, b)!.createdAt < getInstance(second.db, a)!.deletedAt!);
        assert.deepEqual(
          second.checker.violations.filter((v) => !v.endsWith(`its replacement ${b} was created`)),
          [],
        );
      } finally {
        await second.close();
      }

      // Server 1 leads again with its stale cache, where A and B are still live rows: the records
      // say another term deleted them, so they are deleted at the records' time (not counted, and
      // not given a later deletion time by the provider check).
      const again = await start({
        storage,
        provider,
        cachedir: join(root, "cache-1"),
        start: false,
      });
      fx = again;
      try {
        for (let n = 0; n < 3; n++) again.term.advance();
        const mgmt = await again.start();
        assert.equal(mgmt.rebuild.deletedElsewhere, 2);
        assert.equal(mgmt.rebuild.markedDeleted, 0);
        for (const id of [a, b]) {
          const rec = JSON.parse(
            (await storage.get(instanceRecordKey(PREFIX, "default", id)))!.body.toString(),
          ) as { deleted_at: string };
          assert.equal(getInstance(again.db, id)?.deletedAt, Date.parse(rec.deleted_at));
          const last = listInstanceDecisions(again.db, id).at(-1);
          assert.equal(last?.decision, "deleted");
          assert.equal(last?.evidence.by, "earlier-term");
        }
        // A's record says why it left (server 2 never saw its agent register, so no drain): this
        // server's history counts it as surplus, not as a fourth instance.
        assert.equal(listInstanceDecisions(again.db, a).at(-1)?.reason, "scale-down");
        await again.reconciler().whenIdle();
        assert.equal(again.live().length, SIZE);
        assert.deepEqual(again.checker.violations, []);
      } finally {
        await again.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
