// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  CorruptLockfileError,
  formatLockTime,
  type LockRecord,
  nextLastUpdatedMs,
  parseLockRecord,
  parseLockTime,
  sameLockRecord,
  serializeLockRecord,
} from "./lockfile.js";

const VALID: LockRecord = {
  leader_id: "server-1",
  leader_addr: "10.0.0.1:8991",
  last_updated: "2025-03-04T05:06:07.089Z",
  term: 7,
  released: false,
};

describe("lockfile", () => {
  it("round-trips a record with a fixed key order", () => {
    const text = serializeLockRecord(VALID);
    assert.equal(
      text,
      '{"leader_id":"server-1","leader_addr":"10.0.0.1:8991","last_updated":"2025-03-04T05:06:07.089Z","term":7,"released":false}\n',
    );
    assert.deepEqual(parseLockRecord(text), VALID);
    assert.deepEqual(parseLockRecord(Buffer.from(text)), VALID);
  });

  it("ignores unknown fields so a newer writer is not taken for corrupt", () => {
    const rec = parseLockRecord(JSON.stringify({ ...VALID, fencing: "x" }));
    assert.deepEqual(rec, VALID);
  });

  const bad: Array<[string, string, RegExp, number | undefined]> = [
    ["not JSON", "{leader", /not JSON/, undefined],
    ["an array", "[]", /not a JSON object/, undefined],
    ["null", "null", /not a JSON object/, undefined],
    ["empty leader_id", JSON.stringify({ ...VALID, leader_id: "" }), /leader_id/, 7],
    ["numeric leader_addr", JSON.stringify({ ...VALID, leader_addr: 1 }), /leader_addr/, 7],
    [
      "time without ms",
      JSON.stringify({ ...VALID, last_updated: "2025-03-04T05:06:07Z" }),
      /last_updated/,
      7,
    ],
    [
      "time with offset",
      JSON.stringify({ ...VALID, last_updated: "2025-03-04T05:06:07.089+01:00" }),
      /last_updated/,
      7,
    ],
    [
      "impossible date",
      JSON.stringify({ ...VALID, last_updated: "2025-02-30T05:06:07.089Z" }),
      /last_updated/,
      7,
    ],
    [
      "zero term",
      JSON.stringify({ ...VALID, term: 0 }),
      /term must be a positive integer/,
      undefined,
    ],
    ["fractional term", JSON.stringify({ ...VALID, term: 1.5 }), /term/, undefined],
    ["string term", JSON.stringify({ ...VALID, term: "7" }), /term/, undefined],
    ["missing released", JSON.stringify({ ...VALID, released: undefined }), /released/, 7],
    [
      "reference (Go) format",
      '{"leaderID":"a","leaderAddr":"b","lastUpdated":"2025-01-01T00:00:00Z"}',
      /leader_id/,
      undefined,
    ],
  ];
  for (const [name, text, message, salvaged] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => parseLockRecord(text),
        (err: unknown) =>
          err instanceof CorruptLockfileError &&
          err.code === "invalid_argument" &&
          message.test(err.message) &&
          err.salvagedTerm === salvaged,
      );
    });
  }

  it("formats and parses RFC 3339 times with milliseconds", () => {
    const ms = Date.UTC(2025, 0, 2, 3, 4, 5, 6);
    assert.equal(formatLockTime(ms), "2025-01-02T03:04:05.006Z");
    assert.equal(parseLockTime("2025-01-02T03:04:05.006Z"), ms);
    assert.equal(parseLockTime("2025-01-02 03:04:05.006Z"), undefined);
  });

  it("makes last_updated strictly increase even when the wall clock steps back", () => {
    const prev = "2025-01-02T03:04:05.006Z";
    const prevMs = parseLockTime(prev)!;
    assert.equal(nextLastUpdatedMs(prev, prevMs + 2000), prevMs + 2000);
    assert.equal(nextLastUpdatedMs(prev, prevMs), prevMs + 1);
    assert.equal(nextLastUpdatedMs(prev, prevMs - 60_000), prevMs + 1);
    assert.equal(nextLastUpdatedMs(undefined, 5), 5);
  });

  it("compares records by content", () => {
    assert.ok(sameLockRecord(VALID, { ...VALID }));
    assert.ok(!sameLockRecord(VALID, { ...VALID, released: true }));
    assert.ok(!sameLockRecord(VALID, { ...VALID, last_updated: "2025-03-04T05:06:07.090Z" }));
  });
});
