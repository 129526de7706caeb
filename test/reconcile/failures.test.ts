// SPDX-License-Identifier: Apache-2.0
/** Provider failures: WatchErrors events, retries with backoff, giving up, capacity, mass failure. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { ProviderError } from "../../src/providers/provider.js";
import { sleep } from "../../src/shared/sleep.js";
import { startReconcileFixture, waitFor } from "./reconcile-fixture.js";

describe("failures", () => {
  it("reports failed creates to WatchErrors and retries them with backoff", async () => {
    const f = await startReconcileFixture({ start: false });
    try {
      f.provider.failNextCreates(2);
      await f.start();
      await waitFor("3 instances", () => f.live().length === 3);
      await f.reconciler().whenIdle();
      assert.equal(f.provider.counters().createCalls, 5);
      assert.equal(f.errorEvents.length, 2);
      for (const e of f.errorEvents) {
        assert.equal(e.group, "web");
        assert.match(e.error, /injected failure/);
        const row = getInstance(f.db, e.instanceId);
        assert.ok(row?.deletedAt !== undefined, "a failed create's row is abandoned");
        assert.equal(listInstanceDecisions(f.db, e.instanceId).at(-1)?.decision, "create_failed");
      }
      assert.ok(
        f.errorEvents[1]!.timestamp!.getTime() - f.errorEvents[0]!.timestamp!.getTime() >= 30,
      );
    } finally {
      await f.close();
    }
  });

  it("gives up after the last attempt and tries again when the group changes", async () => {
    const f = await startReconcileFixture({
      start: false,
      tuning: { retry: { initialMs: 10, maxMs: 20, maxAttempts: 3 } },
    });
    try {
      f.provider.setCreateError(
        new ProviderError({
          provider: "fake",
          op: "createInstance",
          message: "quota exceeded",
          transient: true,
        }),
      );
      await f.start();
      await waitFor("3 attempts", () =>
        f.errorEvents.some((e) => /gave up after 3 attempts/.test(e.error)),
      );
      await sleep(200);
      assert.equal(f.provider.counters().createCalls, 3, "no timed retry after giving up");
      f.provider.setCreateError(undefined);
      await f.configStore.upsertGroup("default", "web", { vars: { tier: "b" } });
      await waitFor("3 instances", () => f.live().length === 3);
    } finally {
      await f.close();
    }
  });

  it("defers creates while no subnet has capacity", async () => {
    const f = await startReconcileFixture({ start: false });
    try {
      f.provider.setSubnetCapacity("*", false);
      await f.start();
      await waitFor("a capacity error", () => f.errorEvents.length > 0);
      assert.match(f.errorEvents[0]!.error, /no subnet of pool default has capacity/);
      assert.equal(f.provider.counters().createCalls, 0);
      assert.equal(f.live().length, 0, "nothing is pre-inserted without a subnet");
      f.provider.setSubnetCapacity("*", true);
      await waitFor("3 instances", () => f.live().length === 3);
    } finally {
      await f.close();
    }
  });

  it("pauses replacements past the mass-failure guard and resumes below it", async () => {
    const f = await startReconcileFixture({ ackAfterMs: 20 });
    try {
      await waitFor(
        "3 registered instances",
        () =>
          f.live().length === 3 &&
          f.live().every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined),
      );
      await f.reconciler().whenIdle();
      const [a, b] = f.live().map((r) => r.id) as [string, string];
      const creates = f.provider.counters().createCalls;
      // 2 of 3 unhealthy at once: more than a failure of single VMs explains.
      f.reconciler().markUnhealthy(a, { reason: "missed-reports", skipDrain: false });
      f.reconciler().markUnhealthy(b, { reason: "missed-reports", skipDrain: false });
      await waitFor("the alert", () => f.errorEvents.some((e) => /mass failure/.test(e.error)));
      await f.reconciler().whenIdle();
      assert.equal(
        f.provider.counters().createCalls,
        creates,
        "no replacement while the guard holds",
      );
      assert.equal(
        f.errorEvents.filter((e) => /mass failure/.test(e.error)).length,
        1,
        "one alert",
      );

      assert.equal(await f.reconciler().deleteInstance(a), "deleting");
      await waitFor("b replaced", () => getInstance(f.db, b)?.deletedAt !== undefined, 10_000);
      await waitFor("group whole", () => f.live().length === 3);
      assert.deepEqual(f.checker.violations, []);
    } finally {
      await f.close();
    }
  });
});
