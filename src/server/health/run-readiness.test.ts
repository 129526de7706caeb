// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type CheckStatus,
  type ReadinessCheck,
  readinessHttpStatus,
  runReadiness,
  worstStatus,
} from "./run-readiness.js";

const fixed = (name: string, status: CheckStatus, message = name): ReadinessCheck => ({
  name,
  run: () => ({ status, message }),
});

describe("runReadiness", () => {
  const cases: Array<{ name: string; statuses: CheckStatus[]; want: CheckStatus; http: number }> = [
    { name: "all ok", statuses: ["ok", "ok", "ok"], want: "ok", http: 200 },
    {
      name: "degraded stays ready",
      statuses: ["ok", "degraded", "ok"],
      want: "degraded",
      http: 200,
    },
    { name: "one down is unready", statuses: ["ok", "degraded", "down"], want: "down", http: 503 },
    { name: "no checks", statuses: [], want: "ok", http: 200 },
  ];
  for (const tc of cases) {
    it(tc.name, async () => {
      const r = await runReadiness(tc.statuses.map((s, i) => fixed(`c${i}`, s)));
      assert.equal(r.status, tc.want);
      assert.equal(readinessHttpStatus(r.status), tc.http);
      assert.deepEqual(
        Object.entries(r.checks).map(([k, v]) => [k, v.status, v.message]),
        tc.statuses.map((s, i) => [`c${i}`, s, `c${i}`]),
      );
      for (const c of Object.values(r.checks)) assert.ok(c.latency_ms >= 0);
    });
  }

  it("a check that throws or rejects is down with its message", async () => {
    const r = await runReadiness([
      {
        name: "sync",
        run: () => {
          throw new Error("boom");
        },
      },
      { name: "async", run: () => Promise.reject(new Error("bust")) },
    ]);
    assert.equal(r.status, "down");
    assert.equal(r.checks.sync?.message, "check failed: boom");
    assert.equal(r.checks.async?.message, "check failed: bust");
  });

  it("a check that hangs is down after the timeout and its signal aborts", async () => {
    let seen: AbortSignal | undefined;
    const r = await runReadiness(
      [
        {
          name: "hang",
          run: (signal) => {
            seen = signal;
            return new Promise(() => {});
          },
        },
        fixed("fine", "ok"),
      ],
      { timeoutMs: 50 },
    );
    assert.equal(r.status, "down");
    assert.equal(r.checks.hang?.message, "check timed out after 50 ms");
    assert.ok((r.checks.hang?.latency_ms ?? 0) >= 40);
    assert.equal(r.checks.fine?.status, "ok");
    assert.equal(seen?.aborted, true);
  });

  it("runs the checks in parallel", async () => {
    // Each check waits until the other has started: sequential runs would time out.
    let release!: () => void;
    const bothStarted = new Promise<void>((resolve) => {
      let n = 0;
      release = () => {
        if (++n === 2) resolve();
      };
    });
    const waiter = (name: string): ReadinessCheck => ({
      name,
      run: async () => {
        release();
        await bothStarted;
        return { status: "ok", message: "met" };
      },
    });
    const r = await runReadiness([waiter("a"), waiter("b")], { timeoutMs: 10_000 });
    assert.equal(r.status, "ok");
  });

  it("worstStatus orders ok < degraded < down", () => {
    assert.equal(worstStatus(["degraded", "ok"]), "degraded");
    assert.equal(worstStatus(["down", "degraded"]), "down");
    assert.equal(worstStatus([]), "ok");
  });
});
