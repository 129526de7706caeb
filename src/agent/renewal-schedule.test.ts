// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type RenewalScheduleInput, renewalDelayMs } from "./renewal-schedule.js";

const S = 1_000;
const M = 60 * S;
const H = 60 * M;

/** A 24 h certificate (the default agent TTL) valid from 0 to 24 h. */
const day = { validFromMs: 0, validToMs: 24 * H };

describe("renewalDelayMs", () => {
  const cases: Array<{ name: string; input: RenewalScheduleInput; want: number | undefined }> = [
    {
      name: "fresh: at 2/3 of the lifetime",
      input: { ...day, nowMs: 0, failures: 0 },
      want: 16 * H,
    },
    {
      name: "restarted mid-life: the rest of the way to 2/3",
      input: { ...day, nowMs: 10 * H, failures: 0 },
      want: 6 * H,
    },
    { name: "past 2/3: at once", input: { ...day, nowMs: 20 * H, failures: 0 }, want: 0 },
    {
      name: "lifetime counts from notBefore (back-dated 5 min)",
      input: { validFromMs: -5 * M, validToMs: 24 * H, nowMs: 0, failures: 0 },
      want: 16 * H - (5 * M) / 3,
    },
    {
      name: "NSTANCE_CERT_RENEW_BEFORE=1h",
      input: { ...day, nowMs: 0, failures: 0, renewBeforeMs: H },
      want: 23 * H,
    },
    {
      name: "NSTANCE_CERT_RENEW_BEFORE just under the lifetime: within seconds",
      input: { ...day, nowMs: 0, failures: 0, renewBeforeMs: 24 * H - 3 * S },
      want: 3 * S,
    },
    {
      name: "NSTANCE_CERT_RENEW_BEFORE longer than the lifetime: at once",
      input: { ...day, nowMs: 0, failures: 0, renewBeforeMs: 48 * H },
      want: 0,
    },
    {
      name: "the floor between renewals holds back the first attempt",
      input: { ...day, nowMs: 20 * H, failures: 0, notBeforeMs: 20 * H + S },
      want: S,
    },
    {
      name: "a floor already passed changes nothing",
      input: { ...day, nowMs: 0, failures: 0, notBeforeMs: -S },
      want: 16 * H,
    },
    { name: "1st failure: 30 s", input: { ...day, nowMs: 16 * H, failures: 1 }, want: 30 * S },
    { name: "2nd failure: 1 min", input: { ...day, nowMs: 16 * H, failures: 2 }, want: M },
    { name: "3rd failure: 2 min", input: { ...day, nowMs: 16 * H, failures: 3 }, want: 2 * M },
    { name: "5th failure: 8 min", input: { ...day, nowMs: 16 * H, failures: 5 }, want: 8 * M },
    {
      name: "6th failure: capped at 10 min",
      input: { ...day, nowMs: 16 * H, failures: 6 },
      want: 10 * M,
    },
    {
      name: "50th failure: still 10 min",
      input: { ...day, nowMs: 16 * H, failures: 50 },
      want: 10 * M,
    },
    {
      name: "near the expiry: half of the time left (8 min left → 4 min)",
      input: { ...day, nowMs: 24 * H - 8 * M, failures: 9 },
      want: 4 * M,
    },
    {
      name: "near the expiry the backoff still wins when shorter",
      input: { ...day, nowMs: 24 * H - 8 * M, failures: 1 },
      want: 30 * S,
    },
    {
      name: "1.5 s left: one more attempt after the 1 s minimum",
      input: { ...day, nowMs: 24 * H - 1_500, failures: 7 },
      want: S,
    },
    {
      name: "1 s left after a failure: no attempt past the expiry",
      input: { ...day, nowMs: 24 * H - S, failures: 7 },
      want: undefined,
    },
    {
      name: "expired: nothing left to renew with",
      input: { ...day, nowMs: 24 * H, failures: 0 },
      want: undefined,
    },
    {
      name: "expired long ago",
      input: { ...day, nowMs: 48 * H, failures: 3 },
      want: undefined,
    },
    {
      name: "custom retry backoff",
      input: {
        ...day,
        nowMs: 16 * H,
        failures: 3,
        retry: { initialMs: 100, maxMs: 250, factor: 2 },
      },
      want: 250,
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      assert.equal(renewalDelayMs(tc.input), tc.want);
    });
  }

  it("every retry lands before the expiry, and attempts keep coming until the last second", () => {
    for (const leftMs of [10 * M, 2 * M, 45 * S, 5 * S, 2_001]) {
      let now = 24 * H - leftMs;
      let failures = 0;
      let attempts = 0;
      for (;;) {
        const d = renewalDelayMs({ ...day, nowMs: now, failures: ++failures });
        if (d === undefined) break;
        assert.ok(d >= 1_000, `delay ${d} ms`);
        now += d;
        assert.ok(now < day.validToMs, `attempt at ${now} is before the expiry`);
        attempts++;
      }
      assert.ok(attempts >= 1, `${leftMs} ms left: ${attempts} attempts`);
      assert.ok(day.validToMs - now <= 2_000, `gave up ${day.validToMs - now} ms before expiry`);
    }
  });
});
