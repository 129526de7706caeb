// SPDX-License-Identifier: Apache-2.0
// The storage fault switchboard and proxy, driven through the product's S3 backend: each fault kind
// on command, per-proxy isolation (one server's storage failing), seeded replay, and what the
// retrying decorator makes of each fault.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { PreconditionFailedError, StorageError } from "../../src/shared/errors.js";
import { RetryingStorage } from "../../src/storage/retrying-storage.js";
import { S3Storage } from "../../src/storage/s3-storage.js";
import { type S3TestServer, startS3Server } from "./s3-server.js";
import {
  type StorageFaultProxy,
  StorageFaults,
  startStorageFaultProxy,
  storageRequestOf,
} from "./storage-faults.js";

/** A deterministic random source (a linear congruential generator) from `seed`. */
const seeded = (seed: number) => {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1_664_525) + 1_013_904_223) >>> 0;
    return x / 4_294_967_296;
  };
};

describe("StorageFaults decisions", () => {
  const put = { method: "PUT", key: "k", conditional: false };
  const cput = { method: "PUT", key: "k", conditional: true };

  it("forwards everything when no fault is set", () => {
    const f = new StorageFaults();
    for (let i = 0; i < 50; i++) assert.deepEqual(f.decide(put), { delayMs: 0, action: "forward" });
    assert.equal(f.stats.requests, 50);
  });

  it("counted faults fault exactly that many requests, and win over rates", () => {
    const f = new StorageFaults({ settings: { failNext5xx: 2, resetNext: 1, conflictNext: 1 } });
    assert.equal(f.decide(put).action, "drop");
    assert.equal(f.decide(put).action, "error");
    assert.equal(f.decide(put).action, "error");
    assert.equal(f.decide(put).action, "forward", "conflictNext waits for a conditional PUT");
    assert.equal(f.decide(cput).action, "conflict");
    assert.equal(f.decide(cput).action, "forward");
    assert.deepEqual(f.stats, {
      requests: 6,
      delayed: 0,
      errors: 2,
      drops: 1,
      droppedResponses: 0,
      conflicts: 1,
    });
  });

  it("rates draw from the injected random source, so a seed replays exactly", () => {
    const outcomes = (random: () => number) => {
      const f = new StorageFaults({
        random,
        settings: { errorRate: 0.5, drop: 0.1, conflict: 0.5, jitterMs: 100 },
      });
      return Array.from({ length: 200 }, (_, i) => f.decide(i % 2 ? cput : put));
    };
    const a = outcomes(seeded(42));
    assert.deepEqual(outcomes(seeded(42)), a);
    assert.notDeepEqual(outcomes(seeded(43)), a);
    const kinds = new Set(a.map((d) => d.action));
    for (const k of ["drop", "error", "conflict", "forward"]) assert.ok(kinds.has(k as never), k);
    assert.ok(a.every((d) => d.delayMs >= 0 && d.delayMs < 100));
  });

  it("set merges, clear heals, match narrows, and bad values are refused", () => {
    const f = new StorageFaults();
    f.set({ errorRate: 1 });
    f.set({ latencyMs: 5 });
    assert.deepEqual(f.settings, { errorRate: 1, latencyMs: 5 });
    f.set({ match: (r) => r.key.startsWith("shard/") });
    assert.equal(f.decide({ ...put, key: "config/x" }).action, "forward");
    assert.deepEqual(f.decide({ ...put, key: "shard/x" }), { delayMs: 5, action: "error" });
    f.clear();
    assert.equal(f.decide({ ...put, key: "shard/x" }).action, "forward");
    assert.throws(() => f.set({ errorRate: 1.5 }), RangeError);
    assert.throws(() => f.set({ failNext5xx: -1 }), RangeError);
    assert.deepEqual(f.settings, {}, "a refused set changes nothing");
  });

  it("reads key and condition from a path-style S3 request", () => {
    const h = (m: Record<string, string>) => (n: string) => m[n];
    assert.deepEqual(storageRequestOf("PUT", "/b/shard/a%20b/lock?x-id=PutObject", h({})), {
      method: "PUT",
      key: "shard/a b/lock",
      conditional: false,
    });
    assert.equal(storageRequestOf("PUT", "/b/k", h({ "if-match": '"e"' })).conditional, true);
    assert.equal(storageRequestOf("PUT", "/b/k", h({ "if-none-match": "*" })).conditional, true);
    assert.equal(storageRequestOf("GET", "/b/k", h({ "if-match": '"e"' })).conditional, false);
    assert.equal(storageRequestOf("GET", "/b?list-type=2", h({})).key, "");
  });
});

describe("storage fault proxy", () => {
  let s3: S3TestServer;
  let proxy: StorageFaultProxy;
  let other: StorageFaultProxy;
  /** The product's S3 backend through `proxy`, without retries. */
  let viaProxy: S3Storage;
  let viaOther: S3Storage;
  let direct: S3Storage;

  const s3Storage = (endpoint: string) =>
    new S3Storage({
      bucket: s3.bucket,
      endpoint,
      forcePathStyle: true,
      credentials: {
        accessKeyId: s3.env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY!,
      },
    });

  before(async () => {
    s3 = await startS3Server({ bucket: "faults-test" });
    proxy = await startStorageFaultProxy({ target: s3.endpoint });
    other = await startStorageFaultProxy({ target: s3.endpoint });
    viaProxy = s3Storage(proxy.endpoint);
    viaOther = s3Storage(other.endpoint);
    direct = s3Storage(s3.endpoint);
  });
  beforeEach(() => {
    proxy.faults.clear();
    other.faults.clear();
    s3.faults.clear();
  });
  after(async () => {
    await proxy?.stop();
    await other?.stop();
    await s3?.stop();
  });

  it("forwards every operation unchanged when healthy (signatures stay valid)", async () => {
    const before = proxy.faults.stats.requests;
    const etag = await viaProxy.put("p/a", "one", { condition: { ifNoneMatch: "*" } });
    const etag2 = await viaProxy.put("p/a", "two", { condition: { ifMatch: etag } });
    assert.equal((await viaProxy.get("p/a"))?.body.toString(), "two");
    assert.equal((await viaProxy.head("p/a"))?.etag, etag2);
    assert.deepEqual(
      (await viaProxy.list("p/")).map((o) => o.key),
      ["p/a"],
    );
    await assert.rejects(
      viaProxy.put("p/a", "three", { condition: { ifMatch: etag } }),
      PreconditionFailedError,
    );
    await viaProxy.delete("p/a");
    assert.equal(await viaProxy.get("p/a"), undefined);
    assert.equal(proxy.faults.stats.requests - before, 8);
  });

  it("answers 503 on command: a transient StorageError; clear heals", async () => {
    proxy.faults.set({ errorRate: 1 });
    const err = await viaProxy.get("p/missing").then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError && err.transient, String(err));
    assert.match(err.message, /HTTP 503/);
    proxy.faults.clear();
    assert.equal(await viaProxy.get("p/missing"), undefined);
  });

  it("drops connections on command: a transient StorageError, nothing written", async () => {
    proxy.faults.set({ drop: 1 });
    const err = await viaProxy.put("p/dropped", "x").then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError && err.transient, String(err));
    proxy.faults.clear();
    assert.equal(await direct.get("p/dropped"), undefined);
  });

  it("races conditional writes with 409 on command: a lost race, not applied", async () => {
    proxy.faults.set({ conflict: 1 });
    await viaProxy.put("p/plain", "unconditional writes pass");
    await assert.rejects(
      viaProxy.put("p/lock", "mine", { condition: { ifNoneMatch: "*" } }),
      PreconditionFailedError,
    );
    assert.equal(await direct.get("p/lock"), undefined);
    assert.equal(proxy.faults.stats.conflicts >= 1, true);
  });

  it("adds latency on command", async () => {
    proxy.faults.set({ latencyMs: 300 });
    const started = Date.now();
    await viaProxy.head("p/none");
    assert.ok(Date.now() - started >= 290, `took ${Date.now() - started} ms`);
  });

  it("faults only the clients of its own proxy (one server's storage failing)", async () => {
    proxy.faults.set({ errorRate: 1 });
    await viaOther.put("p/other", "fine");
    assert.equal((await viaOther.get("p/other"))?.body.toString(), "fine");
    await assert.rejects(viaProxy.get("p/other"), StorageError);
    assert.equal(other.faults.stats.errors, 0);
  });

  it("cutAll resets open connections; the next request reconnects", async () => {
    await viaProxy.put("p/cut", "x");
    proxy.cutAll();
    // The SDK may pick the just-reset pooled socket once; a retry must then succeed.
    const retrying = new RetryingStorage({ storage: viaProxy });
    assert.equal((await retrying.get("p/cut"))?.body.toString(), "x");
  });

  describe("with the product's retrying decorator", () => {
    const retrying = () =>
      new RetryingStorage({
        storage: viaProxy,
        policy: { maxAttempts: 3, backoff: { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 } },
      });

    it("rides out two 503s and a dropped connection", async () => {
      proxy.faults.set({ failNext5xx: 2 });
      await retrying().put("r/a", "v");
      proxy.faults.set({ resetNext: 1 });
      assert.equal((await retrying().get("r/a"))?.body.toString(), "v");
      assert.equal(proxy.faults.settings.failNext5xx, 0);
    });

    it("a conditional write whose answer was lost is reported as won", async () => {
      proxy.faults.set({ dropResponseNext: 1, match: (r) => r.conditional });
      const etag = await retrying().put("r/lost-answer", "payload", {
        condition: { ifNoneMatch: "*" },
      });
      proxy.faults.clear();
      const stored = await direct.get("r/lost-answer");
      assert.equal(stored?.body.toString(), "payload");
      assert.equal(stored?.etag, etag);
      assert.ok(proxy.faults.stats.droppedResponses >= 1);
    });

    it("a 409 race is final: not retried, not applied", async () => {
      proxy.faults.set({ conflictNext: 1 });
      const before = proxy.faults.stats.requests;
      await assert.rejects(
        retrying().put("r/race", "x", { condition: { ifNoneMatch: "*" } }),
        PreconditionFailedError,
      );
      assert.equal(proxy.faults.stats.requests - before, 1, "one attempt");
      assert.equal(await direct.get("r/race"), undefined);
    });
  });
});
