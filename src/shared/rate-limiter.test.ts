// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkRateLimit, clientKey, RateLimiter, takeToken } from "./rate-limiter.js";

describe("takeToken", () => {
  const limit = { burst: 3, perSecond: 2 };

  it("lets a burst through, then refuses with the time to the next token", () => {
    let bucket: ReturnType<typeof takeToken>["bucket"] | undefined;
    const allowed: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const r = takeToken(bucket, limit, 1_000);
      bucket = r.bucket;
      allowed.push(r.result.allowed);
      if (!r.result.allowed) {
        assert.equal(r.result.retryAfterMs, 500, "one token at 2/s takes 500 ms");
        assert.equal(r.result.firstRefusal, true);
      }
    }
    assert.deepEqual(allowed, [true, true, true, false]);
    const later = takeToken(bucket, limit, 1_250);
    assert.equal(later.result.allowed, false);
    assert.equal(later.result.retryAfterMs, 250);
    assert.equal(later.result.firstRefusal, false, "the same episode");
    assert.equal(takeToken(later.bucket, limit, 1_500).result.allowed, true);
  });

  it("refills at the rate, never above the burst, and ends the episode once full", () => {
    const empty = { tokens: 0, updatedAt: 0, limitedSince: 0 };
    const r = takeToken(empty, limit, 60_000);
    assert.equal(r.result.allowed, true);
    assert.equal(r.bucket.tokens, 2, "capped at burst 3, minus the one taken");
    assert.equal(r.bucket.limitedSince, undefined);
    // Half refilled: still the same episode, so a refusal after it is not "first".
    const half = takeToken({ tokens: 0, updatedAt: 0, limitedSince: 0 }, limit, 600);
    assert.equal(half.bucket.limitedSince, 0);
  });

  it("does not refill backwards when the clock steps back", () => {
    const r = takeToken({ tokens: 0.5, updatedAt: 10_000 }, limit, 5_000);
    assert.equal(r.result.allowed, false);
    assert.equal(r.result.retryAfterMs, 250);
  });
});

describe("clientKey", () => {
  const cases: Array<[string, string]> = [
    ["10.1.2.3", "10.1.2.3"],
    ["::ffff:10.1.2.3", "10.1.2.3"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:db8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
    ["::1", "0:0:0:0::/64"],
    ["unknown", "unknown"],
  ];
  for (const [address, key] of cases) {
    it(`${address} → ${key}`, () => assert.equal(clientKey(address), key));
  }
});

describe("RateLimiter", () => {
  it("keeps one budget per client and forgets the least recently seen beyond maxClients", () => {
    let now = 0;
    const rl = new RateLimiter({
      limit: { burst: 1, perSecond: 1 },
      maxClients: 2,
      now: () => now,
    });
    assert.equal(rl.take("10.0.0.1").allowed, true);
    assert.equal(rl.take("10.0.0.1").allowed, false);
    assert.equal(rl.take("10.0.0.2").allowed, true, "another address has its own budget");
    assert.equal(rl.take("2001:db8::1").allowed, true);
    assert.equal(rl.take("2001:db8::2").allowed, false, "one /64 shares a budget");
    assert.equal(rl.size, 2);
    // 10.0.0.1 was forgotten (least recently seen): it starts full again.
    assert.equal(rl.take("10.0.0.1").allowed, true);
    now = 1_000;
    assert.equal(rl.take("2001:db8::3").allowed, true, "refilled after a second");
  });

  it("refuses nonsensical limits", () => {
    assert.throws(() => checkRateLimit({ burst: 0, perSecond: 1 }), /burst/);
    assert.throws(() => checkRateLimit({ burst: 1.5, perSecond: 1 }), /burst/);
    assert.throws(() => checkRateLimit({ burst: 1, perSecond: 0 }), /per second/);
  });
});
