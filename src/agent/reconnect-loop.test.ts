// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelayMs } from "../shared/backoff.js";
import { silentLogger } from "../shared/logger.js";
import {
  DEFAULT_STREAM_BACKOFF,
  nextReconnectAttempt,
  runReconnectLoop,
} from "./reconnect-loop.js";

describe("nextReconnectAttempt", () => {
  for (const [name, attempt, upMs, want] of [
    ["short-lived stream keeps growing", 3, 100, 3],
    ["stable stream resets", 3, 30_000, 0],
    ["first failure", 0, 0, 0],
  ] as const) {
    it(name, () => assert.equal(nextReconnectAttempt(attempt, upMs, 30_000), want));
  }
});

describe("DEFAULT_STREAM_BACKOFF", () => {
  it("starts at 5 s (seed 003), never below, and caps at 60 s plus jitter", () => {
    assert.equal(
      backoffDelayMs(0, DEFAULT_STREAM_BACKOFF, () => 0),
      5_000,
    );
    assert.equal(
      backoffDelayMs(1, DEFAULT_STREAM_BACKOFF, () => 0),
      10_000,
    );
    assert.equal(
      backoffDelayMs(10, DEFAULT_STREAM_BACKOFF, () => 0),
      60_000,
    );
    assert.equal(
      backoffDelayMs(0, DEFAULT_STREAM_BACKOFF, () => 0.999),
      5_999,
    );
    assert.equal(
      backoffDelayMs(10, DEFAULT_STREAM_BACKOFF, () => 1),
      72_000,
    );
  });
});

describe("runReconnectLoop", () => {
  it("reconnects with growing delays, resets after a stable stream, and stops on abort", async () => {
    let clock = 0;
    let calls = 0;
    const ac = new AbortController();
    const waits: unknown[] = [];
    const logs: Array<[string, Record<string, unknown> | undefined]> = [];
    const logger = {
      ...silentLogger,
      info: (msg: string, attrs?: Record<string, unknown>) => logs.push([msg, attrs]),
      warn: (msg: string, attrs?: Record<string, unknown>) => logs.push([msg, attrs]),
    };
    // How long each connection "lasts" on the fake clock; the 4th one is stable.
    const lifetimes = [0, 0, 0, 50_000, 0];
    await runReconnectLoop(
      {
        name: "test",
        logger,
        backoff: { initialMs: 4, maxMs: 64, factor: 2 },
        stableAfterMs: 30_000,
        now: () => clock,
        random: () => 0,
        connect: async () => {
          const i = calls++;
          clock += lifetimes[i] ?? 0;
          if (i === lifetimes.length) ac.abort();
          if (i % 2 === 0) throw new Error("boom");
        },
      },
      ac.signal,
    );
    for (const [, attrs] of logs) waits.push(attrs?.retry_in_ms);
    assert.equal(calls, lifetimes.length + 1);
    assert.deepEqual(waits, [4, 8, 16, 4, 8]);
    assert.deepEqual(
      logs.map(([msg]) => msg),
      [
        "Stream failed; reconnecting",
        "Stream ended by the server; reconnecting",
        "Stream failed; reconnecting",
        "Stream ended by the server; reconnecting",
        "Stream failed; reconnecting",
      ],
    );
    assert.equal(logs[0]![1]?.err, "boom");
  });

  it("returns promptly when aborted during the backoff wait", async () => {
    const ac = new AbortController();
    let calls = 0;
    const t0 = Date.now();
    const loop = runReconnectLoop(
      {
        name: "test",
        logger: silentLogger,
        backoff: { initialMs: 60_000, maxMs: 60_000 },
        connect: async () => {
          calls++;
          setTimeout(() => ac.abort(), 10);
          throw new Error("down");
        },
      },
      ac.signal,
    );
    await loop;
    assert.equal(calls, 1);
    assert.ok(Date.now() - t0 < 5_000);
  });
});
