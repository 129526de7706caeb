// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { GcsTestServer } from "../../test/support/gcs-server.js";
import { startGcsServer } from "../../test/support/gcs-server.js";
import type { S3TestServer } from "../../test/support/s3-server.js";
import { startS3Server } from "../../test/support/s3-server.js";
import { PreconditionFailedError, StorageError } from "../shared/errors.js";
import { createStorage } from "./create-storage.js";
import { MemoryStorage } from "./memory-storage.js";
import type { ObjectStorage, PutOptions } from "./object-storage.js";
import type { StorageRetryPolicy } from "./retrying-storage.js";
import { DEFAULT_STORAGE_RETRY_POLICY, RetryingStorage } from "./retrying-storage.js";

const FAST: Partial<StorageRetryPolicy> = {
  maxAttempts: 3,
  backoff: { initialMs: 1, maxMs: 5, factor: 4 },
};

/** A memory storage whose next calls throw the queued errors, counting every call. */
class FlakyStorage extends MemoryStorage {
  readonly failures: Error[] = [];
  calls = 0;
  /** When set, put() writes first and then throws the queued error (a lost response). */
  failAfterWrite = false;
  /** Runs before a queued error is thrown: another writer acting between two attempts. */
  beforeThrow: (() => Promise<void>) | undefined;

  override async get(key: string, signal?: AbortSignal) {
    this.calls++;
    const f = this.failures.shift();
    if (f !== undefined) throw f;
    return super.get(key, signal);
  }

  override async put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    this.calls++;
    const f = this.failures.shift();
    if (f !== undefined && !this.failAfterWrite) {
      await this.beforeThrow?.();
      throw f;
    }
    const etag = await super.put(key, body, opts);
    if (f !== undefined) throw f;
    return etag;
  }
}

const transient = (): StorageError => new StorageError("get", "k", "ECONNRESET", true);
const wrap = (inner: ObjectStorage, policy = FAST): RetryingStorage =>
  new RetryingStorage({ storage: inner, policy });

describe("RetryingStorage", () => {
  it("defaults to 3 attempts with 100 ms then 400 ms between them", () => {
    assert.equal(DEFAULT_STORAGE_RETRY_POLICY.maxAttempts, 3);
    const { initialMs, factor } = DEFAULT_STORAGE_RETRY_POLICY.backoff;
    assert.equal(initialMs, 100);
    assert.equal(initialMs * (factor ?? 2), 400);
  });

  it("retries transient failures until one succeeds", async () => {
    const inner = new FlakyStorage();
    await inner.put("k", "v");
    inner.calls = 0;
    inner.failures.push(transient(), transient());
    const got = await wrap(inner).get("k");
    assert.equal(got?.body.toString(), "v");
    assert.equal(inner.calls, 3);
  });

  it("classifies raw SDK and socket errors: 5xx, 429 and ECONNRESET retried", async () => {
    const inner = new FlakyStorage();
    await inner.put("k", "v");
    inner.calls = 0;
    inner.failures.push(
      Object.assign(new Error("slow down"), { $metadata: { httpStatusCode: 503 } }),
      Object.assign(new Error("too many"), { $metadata: { httpStatusCode: 429 } }),
    );
    await wrap(inner, { ...FAST, maxAttempts: 4 }).get("k");
    assert.equal(inner.calls, 3);
    inner.calls = 0;
    inner.failures.push(Object.assign(new Error("reset"), { code: "ECONNRESET" }));
    await wrap(inner).get("k");
    assert.equal(inner.calls, 2);
  });

  it("gives up after maxAttempts with a StorageError naming op and key", async () => {
    const inner = new FlakyStorage();
    const last = transient();
    inner.failures.push(transient(), transient(), last, transient());
    await assert.rejects(wrap(inner).get("some/key"), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(err.op, "get");
      assert.equal(err.key, "some/key");
      assert.equal(err.transient, true);
      assert.equal(err.cause, last);
      assert.match(err.message, /failed after 3 attempts: ECONNRESET/);
      return true;
    });
    assert.equal(inner.calls, 3);
  });

  it("never retries a lost conditional write", async () => {
    const inner = new FlakyStorage();
    await inner.put("k", "v");
    inner.calls = 0;
    await assert.rejects(
      wrap(inner).put("k", "w", { condition: { ifNoneMatch: "*" } }),
      PreconditionFailedError,
    );
    assert.equal(inner.calls, 1);
  });

  it("never retries permanent failures", async () => {
    for (const err of [
      new StorageError("get", "k", "access denied", false),
      Object.assign(new Error("forbidden"), { $metadata: { httpStatusCode: 403 } }),
      new TypeError("bug"),
    ]) {
      const inner = new FlakyStorage();
      inner.failures.push(err);
      await assert.rejects(wrap(inner).get("k"), (e: unknown) => e === err);
      assert.equal(inner.calls, 1);
    }
  });

  it("stops waiting when the caller's signal aborts during backoff", async () => {
    const inner = new FlakyStorage();
    inner.failures.push(transient(), transient());
    const ctl = new AbortController();
    const slow = wrap(inner, { ...FAST, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    const started = Date.now();
    setTimeout(() => ctl.abort(new Error("caller gave up")), 50);
    await assert.rejects(slow.get("k", ctl.signal), /caller gave up/);
    assert.ok(Date.now() - started < 10_000);
    assert.equal(inner.calls, 1);
  });

  it("times out a hung attempt and retries it", async () => {
    let calls = 0;
    const hung: ObjectStorage = Object.assign(new MemoryStorage(), {
      get: (_key: string, signal?: AbortSignal) => {
        calls++;
        return new Promise<never>((_, reject) => {
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
      },
    });
    await assert.rejects(
      wrap(hung, { ...FAST, attemptTimeoutMs: 30 }).get("k"),
      (err: unknown) => err instanceof StorageError && /timed out after 30ms/.test(err.message),
    );
    assert.equal(calls, 3);
  });

  it("reports success when a retried conditional write finds its own earlier write", async () => {
    const inner = new FlakyStorage();
    inner.failAfterWrite = true;
    inner.failures.push(transient());
    const etag = await wrap(inner).put("k", "mine", { condition: { ifNoneMatch: "*" } });
    const got = await inner.get("k");
    assert.equal(got?.etag, etag);
    assert.equal(got?.body.toString(), "mine");
  });

  it("still reports a lost race when the current object is someone else's", async () => {
    const inner = new FlakyStorage();
    const base = await inner.put("k", "base");
    // The first attempt fails without writing, and another writer replaces the object before
    // the retry.
    inner.failures.push(transient());
    inner.beforeThrow = async () => {
      await MemoryStorage.prototype.put.call(inner, "k", "theirs");
    };
    await assert.rejects(
      wrap(inner).put("k", "mine", { condition: { ifMatch: base } }),
      PreconditionFailedError,
    );
    assert.equal((await inner.get("k"))?.body.toString(), "theirs");
  });
});

describe("RetryingStorage over real servers", () => {
  let s3: S3TestServer;
  let gcs: GcsTestServer;
  before(async () => {
    [s3, gcs] = await Promise.all([startS3Server(), startGcsServer()]);
  });
  after(async () => {
    await Promise.all([s3?.stop(), gcs?.stop()]);
  });

  it("s3: rides out two 503s and a dropped connection", async () => {
    const s = await createStorage({ kind: "s3", bucket: s3.bucket, retry: FAST }, s3.env);
    s3.faults.set({ failNext5xx: 2 });
    const etag = await s.put("retry/a", "v", { condition: { ifNoneMatch: "*" } });
    assert.equal(s3.faults.settings.failNext5xx ?? 0, 0);
    s3.faults.set({ resetNext: 1 });
    assert.equal((await s.get("retry/a"))?.etag, etag);
    assert.equal(s3.faults.settings.resetNext ?? 0, 0);
  });

  it("s3: fails with a transient StorageError when the outage outlasts the attempts", async () => {
    const s = await createStorage({ kind: "s3", bucket: s3.bucket, retry: FAST }, s3.env);
    s3.faults.set({ failNext5xx: 3 });
    await assert.rejects(
      s.get("retry/b"),
      (err: unknown) =>
        err instanceof StorageError && err.op === "get" && err.transient && /503/.test(err.message),
    );
  });

  it("gcs: rides out two 503s", async () => {
    const s = await createStorage({ kind: "gcs", bucket: gcs.bucket, retry: FAST }, gcs.env);
    gcs.faults.failNext5xx = 2;
    const etag = await s.put("retry/a", "v", { condition: { ifNoneMatch: "*" } });
    assert.equal(gcs.faults.failNext5xx, 0);
    assert.equal((await s.head("retry/a"))?.etag, etag);
  });
});
