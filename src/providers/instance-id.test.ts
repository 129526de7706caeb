// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  instanceIdFromUuid,
  instanceStorageKey,
  isInstanceId,
  newInstanceId,
  parseInstanceId,
} from "./instance-id.js";

const REF_ID = "knc06bgm7733st2576nx5jht4ecjw";
const REF_UUID = "01970a1c-e31e-7422-9cd5-e9651d11cc97";

describe("instance IDs", () => {
  it("decodes the reference example", () => {
    const p = parseInstanceId(REF_ID);
    assert.equal(p.kind, "knc");
    assert.equal(p.uuid, REF_UUID);
    assert.equal(p.createdAt, 0x01970a1ce31e);
    assert.equal(new Date(p.createdAt).toISOString(), "2025-05-26T01:02:34.782Z");
  });

  it("encodes the reference example", () => {
    assert.equal(instanceIdFromUuid("knc", REF_UUID), REF_ID);
    assert.equal(instanceStorageKey(REF_ID), `${REF_UUID}-knc`);
  });

  it("round-trips fresh IDs with the given creation time", () => {
    const at = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    for (let i = 0; i < 200; i++) {
      const id = newInstanceId("web", at);
      assert.match(id, /^web[0-9a-hjkmnp-tv-z]{26}$/);
      assert.equal(id.length, 29);
      const p = parseInstanceId(id);
      assert.equal(p.kind, "web");
      assert.equal(p.createdAt, at);
      assert.match(p.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(instanceIdFromUuid("web", p.uuid), id);
    }
  });

  it("is strictly increasing, also within one millisecond and across kinds' payloads", () => {
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) ids.push(newInstanceId("tst"));
    for (let i = 1; i < ids.length; i++) {
      assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
    }
    assert.equal(new Set(ids).size, ids.length);
    // Many of them shared a millisecond (5000 IDs take far less than 5000 ms).
    const ms = new Set(ids.map((id) => parseInstanceId(id).createdAt));
    assert.ok(ms.size < ids.length);
  });

  it("stays monotonic for repeated explicit times", () => {
    const at = Date.now();
    const a = newInstanceId("tst", at);
    const b = newInstanceId("tst", at);
    assert.ok(a < b);
    assert.equal(parseInstanceId(b).createdAt, at);
  });

  it("sorts storage keys in creation order", () => {
    const early = newInstanceId("abc", 1_000_000);
    const late = newInstanceId("abc", 2_000_000);
    assert.ok(instanceStorageKey(early) < instanceStorageKey(late));
  });

  const bad: Array<[string, string]> = [
    ["empty", ""],
    ["short", "knc06bgm7733st2576nx5jht4ecj"],
    ["long", `${REF_ID}0`],
    ["uppercase", REF_ID.toUpperCase()],
    ["excluded letter u", "knc06bgm7733st2576nx5jht4ecju"],
    ["digit in kind", "kn106bgm7733st2576nx5jht4ecjw"],
    ["non-zero padding bits", "knc06bgm7733st2576nx5jht4ecjx"],
    ["not version 7", instanceIdFromUuidLoose("knc", "01970a1c-e31e-4422-9cd5-e9651d11cc97")],
  ];
  for (const [name, id] of bad) {
    it(`rejects ${name}`, () => {
      assert.equal(isInstanceId(id), false);
      assert.throws(() => parseInstanceId(id), { code: "invalid_argument" });
    });
  }

  it("rejects a bad kind when minting", () => {
    assert.throws(() => newInstanceId("ab"), { code: "invalid_argument" });
    assert.throws(() => newInstanceId("AbC"), { code: "invalid_argument" });
  });
});

/** Encodes any 128-bit UUID (even non-v7) the way puidv7 does, to build invalid fixtures. */
function instanceIdFromUuidLoose(kind: string, uuid: string): string {
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  let bits = BigInt(`0x${uuid.replaceAll("-", "")}`) << 2n;
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = alphabet[Number(bits & 31n)]! + out;
    bits >>= 5n;
  }
  return kind + out;
}
