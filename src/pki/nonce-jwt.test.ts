// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { describe, it } from "node:test";
import { SignJWT } from "jose";
import { NstanceError } from "../shared/errors.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import { mintNonceJwt, type NonceClaims, verifyNonceJwt } from "./nonce-jwt.js";

const signingKey = createPrivateKey(generateEd25519KeyPair().privateKeyPem);
const verifyKey = createPublicKey(signingKey);
const now = new Date("2025-03-01T10:00:00Z");
const agent: NonceClaims = {
  subject: "knc06bgm7733st2576nx5jht4ecjw",
  kind: "agent",
  clusterId: "cluster-1",
  shard: "us-west-2a",
  group: "web",
  onDemand: false,
  tenant: "default",
  configHash: "sha256:abc",
};
const operator: NonceClaims = {
  ...agent,
  subject: "cluster-1",
  kind: "operator",
  shard: "",
  group: "",
};
const verifyAgent = {
  verifyKey,
  kind: "agent",
  clusterId: "cluster-1",
  shard: "us-west-2a",
  now,
} as const;

async function expectError(p: Promise<unknown>, code: string, pattern: RegExp, token?: string) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof NstanceError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    if (token) assert.ok(!err.message.includes(token), "message must not contain the token");
    return true;
  });
}

describe("nonce JWT", () => {
  it("round-trips every claim", async () => {
    const token = await mintNonceJwt(agent, { signingKey, ttlMs: 300_000, now });
    const [header] = token.split(".");
    assert.deepEqual(JSON.parse(Buffer.from(header!, "base64url").toString()), {
      alg: "EdDSA",
      typ: "JWT",
    });
    const payload = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    assert.equal(payload.iss, "nstance-server");
    assert.equal(payload.cluster_id, "cluster-1");
    assert.equal(payload.on_demand, false);
    const v = await verifyNonceJwt(token, verifyAgent);
    assert.deepEqual(v, {
      ...agent,
      issuedAt: now,
      notBefore: now,
      expiresAt: new Date(now.getTime() + 300_000),
    });
  });

  it("verifies with the private key too (its public half)", async () => {
    const token = await mintNonceJwt(agent, { signingKey, ttlMs: 60_000, now });
    const v = await verifyNonceJwt(token, { ...verifyAgent, verifyKey: signingKey });
    assert.equal(v.subject, agent.subject);
  });

  it("rejects a token signed by another key", async () => {
    const other = createPrivateKey(generateEd25519KeyPair().privateKeyPem);
    const token = await mintNonceJwt(agent, { signingKey: other, ttlMs: 60_000, now });
    await expectError(verifyNonceJwt(token, verifyAgent), "unauthenticated", /signature/, token);
  });

  it("rejects a tampered payload", async () => {
    const token = await mintNonceJwt(agent, { signingKey, ttlMs: 60_000, now });
    const [h, , s] = token.split(".");
    const forged = Buffer.from(JSON.stringify({ ...agent, tenant: "other" })).toString("base64url");
    await expectError(verifyNonceJwt(`${h}.${forged}.${s}`, verifyAgent), "unauthenticated", /./);
  });

  it("rejects an expired token and honours the clock tolerance", async () => {
    const token = await mintNonceJwt(agent, { signingKey, ttlMs: 60_000, now });
    const later = new Date(now.getTime() + 60_000 + 10_000);
    await verifyNonceJwt(token, { ...verifyAgent, now: later }); // within 30 s tolerance
    await expectError(
      verifyNonceJwt(token, { ...verifyAgent, now: later, clockToleranceMs: 0 }),
      "unauthenticated",
      /expired/,
      token,
    );
  });

  it("rejects a token that is not valid yet", async () => {
    const token = await mintNonceJwt(agent, { signingKey, ttlMs: 600_000, now });
    const earlier = new Date(now.getTime() - 120_000);
    await expectError(
      verifyNonceJwt(token, { ...verifyAgent, now: earlier }),
      "unauthenticated",
      /not valid yet/,
    );
  });

  it("rejects the wrong kind", async () => {
    const token = await mintNonceJwt(operator, { signingKey, ttlMs: 60_000, now });
    await expectError(verifyNonceJwt(token, verifyAgent), "unauthenticated", /kind "operator"/);
  });

  it("rejects empty sub, cluster_id or tenant as unauthenticated", async () => {
    for (const [field, claim] of [
      ["subject", "sub"],
      ["tenant", "tenant"],
      ["clusterId", "cluster_id"],
    ] as const) {
      const token = await mintNonceJwt(
        { ...agent, [field]: "" },
        { signingKey, ttlMs: 60_000, now },
      );
      await expectError(verifyNonceJwt(token, verifyAgent), "unauthenticated", new RegExp(claim));
    }
  });

  it("rejects another cluster or shard as invalid_argument", async () => {
    const other = await mintNonceJwt(
      { ...agent, clusterId: "cluster-2" },
      { signingKey, ttlMs: 60_000, now },
    );
    await expectError(verifyNonceJwt(other, verifyAgent), "invalid_argument", /another cluster/);
    const shard = await mintNonceJwt(
      { ...agent, shard: "eu-1a" },
      { signingKey, ttlMs: 60_000, now },
    );
    await expectError(verifyNonceJwt(shard, verifyAgent), "invalid_argument", /shard "eu-1a"/);
  });

  it("checks operator nonces: sub must be the cluster ID", async () => {
    const opts = { verifyKey, kind: "operator", clusterId: "cluster-1", now } as const;
    const good = await mintNonceJwt(operator, { signingKey, ttlMs: 60_000, now });
    assert.equal((await verifyNonceJwt(good, opts)).kind, "operator");
    const bad = await mintNonceJwt(
      { ...operator, subject: "someone" },
      { signingKey, ttlMs: 60_000, now },
    );
    await expectError(verifyNonceJwt(bad, opts), "invalid_argument", /sub is not the cluster ID/);
  });

  it("rejects other algorithms, wrong issuers and garbage", async () => {
    const hs = await new SignJWT({ kind: "agent" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("x")
      .sign(new Uint8Array(32));
    await expectError(verifyNonceJwt(hs, verifyAgent), "unauthenticated", /./);
    const iss = await new SignJWT({ kind: "agent", cluster_id: "cluster-1", tenant: "t" })
      .setProtectedHeader({ alg: "EdDSA" })
      .setIssuer("someone-else")
      .setSubject("x")
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(new Date(now.getTime() + 60_000))
      .sign(signingKey);
    await expectError(verifyNonceJwt(iss, verifyAgent), "unauthenticated", /iss/);
    await expectError(verifyNonceJwt("not.a.jwt", verifyAgent), "unauthenticated", /malformed/);
  });
});
