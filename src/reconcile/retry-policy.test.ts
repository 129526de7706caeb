// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_RETRY_POLICY, isRetryExhausted, retryDelayMs } from "./retry-policy.js";

describe("retryDelayMs", () => {
  it("doubles from 5 s up to 2 min without jitter at the midpoint", () => {
    const mid = () => 0.5;
    const table: Array<[number, number]> = [
      [1, 5000],
      [2, 10_000],
      [3, 20_000],
      [4, 40_000],
      [5, 80_000],
      [6, 120_000],
      [8, 120_000],
    ];
    for (const [failures, want] of table) {
      assert.equal(retryDelayMs(failures, DEFAULT_RETRY_POLICY, mid), want, `failure ${failures}`);
    }
  });

  it("moves each delay by at most ±25 %", () => {
    assert.equal(
      retryDelayMs(1, DEFAULT_RETRY_POLICY, () => 0),
      3750,
    );
    assert.equal(
      retryDelayMs(1, DEFAULT_RETRY_POLICY, () => 1),
      6250,
    );
    assert.equal(
      retryDelayMs(6, DEFAULT_RETRY_POLICY, () => 1),
      150_000,
    );
    for (let i = 0; i < 200; i++) {
      const d = retryDelayMs(3, DEFAULT_RETRY_POLICY);
      assert.ok(d >= 15_000 && d <= 25_000, String(d));
    }
  });

  it("is exhausted after 8 failures", () => {
    assert.equal(isRetryExhausted(7), false);
    assert.equal(isRetryExhausted(8), true);
  });
});
