// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { backoffDelayMs } from "../shared/backoff.js";
import { silentLogger } from "../shared/logger.js";
import { DEFAULT_STREAM_BACKOFF, runReconnectLoop } from "./reconnect-loop.js";

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

  it("counts backoff per address and goes on at once after a standby names the leader", async () => {
    const ac = new AbortController();
    const logs: Array<[string, Record<string, unknown> | undefined]> = [];
    const logger = {
      ...silentLogger,
      info: (msg: string, attrs?: Record<string, unknown>) => logs.push([msg, attrs]),
      warn: (msg: string, attrs?: Record<string, unknown>) => logs.push([msg, attrs]),
    };
    // The channel moves on after each failure, as AgentChannel does with two addresses.
    const addrs = ["a", "b"];
    let index = 0;
    const channel = { addrCount: 2, onServerReached: () => () => {} } as {
      addrCount: number;
      addr?: string;
      onServerReached: () => () => void;
    };
    Object.defineProperty(channel, "addr", { get: () => addrs[index] });
    const named = Object.assign(new Error("refused"), {
      code: status.FAILED_PRECONDITION,
      details: "not the shard leader; the leader is s1 at localhost:1",
    });
    const down = Object.assign(new Error("down"), {
      code: status.UNAVAILABLE,
      details: "connect ECONNREFUSED",
    });
    // a down, b standby naming a, a down, b standby, a down: then stop.
    const failures = [down, named, down, named, down, down, down];
    const used: string[] = [];
    await runReconnectLoop(
      {
        name: "health",
        logger,
        channel,
        backoff: { initialMs: 1, maxMs: 64, factor: 2 },
        random: () => 0,
        connect: async () => {
          used.push(channel.addr!);
          const err = failures[used.length - 1] ?? down;
          if (used.length >= failures.length) ac.abort();
          index = (index + 1) % 2;
          throw err;
        },
      },
      ac.signal,
    );
    assert.deepEqual(used, ["a", "b", "a", "b", "a", "b", "a"]);
    assert.deepEqual(
      logs.map(([msg, attrs]) =>
        msg === "Stream failed; reconnecting" ? `wait ${String(attrs?.retry_in_ms)}` : "now",
      ),
      // Per address: b fresh (1 ms); b names a → a at once; b's 1st retry (1); at once; b's 2nd
      // retry (2); a's 3rd retry (4).
      ["wait 1", "now", "wait 1", "now", "wait 2", "wait 4"],
    );
  });

  it("a stream waiting in backoff retries at once when another stream reaches the server", async () => {
    const ac = new AbortController();
    const listeners = new Set<(addr: string) => void>();
    const channel = {
      addr: "a",
      addrCount: 1,
      onServerReached: (l: (addr: string) => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    };
    const logs: string[] = [];
    let calls = 0;
    const t0 = Date.now();
    const loop = runReconnectLoop(
      {
        name: "health",
        logger: { ...silentLogger, info: (msg: string) => logs.push(msg) },
        channel,
        // Without the wake-up the second attempt would be a minute away.
        backoff: { initialMs: 60_000, maxMs: 60_000 },
        connect: async () => {
          calls++;
          if (calls === 2) ac.abort();
          else {
            setTimeout(() => {
              for (const l of listeners) l("a");
            }, 20);
          }
          throw new Error("refused");
        },
      },
      ac.signal,
    );
    await loop;
    assert.equal(calls, 2);
    assert.ok(Date.now() - t0 < 10_000, "retried long before the minute of backoff");
    assert.ok(logs.includes("Another stream reached the server; retrying now"));
    assert.equal(listeners.size, 0, "unsubscribed when the loop ended");
  });
});
