// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import { decodeNoncePayload, isNonceExpired } from "./nonce-payload.js";

function jwt(payload: unknown, header: unknown = { alg: "EdDSA", typ: "JWT" }): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${part(header)}.${part(payload)}.c2lnbmF0dXJl`;
}

describe("decodeNoncePayload", () => {
  it("reads sub, exp and config_hash without verifying the signature", () => {
    const p = decodeNoncePayload(
      jwt({ sub: "tst0000000000000000000000000", exp: 1_900_000_000, config_hash: "sha256:ab" }),
    );
    assert.deepEqual(p, {
      subject: "tst0000000000000000000000000",
      expiresAt: new Date(1_900_000_000_000),
      configHash: "sha256:ab",
    });
  });

  it("tolerates missing optional claims and surrounding whitespace", () => {
    assert.deepEqual(decodeNoncePayload(`  ${jwt({})}\n`), {
      subject: "",
      expiresAt: undefined,
      configHash: "",
    });
  });

  const bad: Array<[string, string, RegExp]> = [
    ["two parts", "a.b", /not a JWT/],
    ["bad characters", "a.b+c.d", /not a JWT/],
    ["payload not JSON", `e30.${Buffer.from("{nope").toString("base64url")}.x`, /not JSON/],
    ["payload an array", jwt([1, 2]), /not an object/],
    ["exp a string", jwt({ exp: "tomorrow" }), /exp is not a number/],
    ["sub a number", jwt({ sub: 7 }), /not strings/],
    ["multi-line config_hash", jwt({ config_hash: "a\nb" }), /not one line/],
  ];
  for (const [name, token, re] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => decodeNoncePayload(token),
        (err: unknown) =>
          err instanceof NstanceError && err.code === "invalid_argument" && re.test(err.message),
      );
    });
  }

  it("never puts the token in its error messages", () => {
    const token = jwt({ exp: "x", secret: "s3cr3t" });
    assert.throws(
      () => decodeNoncePayload(token),
      (err: unknown) => err instanceof Error && !err.message.includes(token.split(".")[1]!),
    );
  });
});

describe("isNonceExpired", () => {
  const at = (ms: number | undefined) => ({
    subject: "x",
    configHash: "",
    expiresAt: ms === undefined ? undefined : new Date(ms),
  });
  for (const [name, exp, now, want] of [
    ["before exp", 2_000, 1_999, false],
    ["at exp", 2_000, 2_000, true],
    ["after exp", 2_000, 5_000, true],
    ["no exp", undefined, 5_000, false],
  ] as const) {
    it(name, () => assert.equal(isNonceExpired(at(exp), now), want));
  }
});
