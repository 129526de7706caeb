// SPDX-License-Identifier: Apache-2.0
/**
 * A real S3 server for tests: `s3rver` on 127.0.0.1, port 0, with a temp directory and a bucket.
 * s3rver ignores conditional PUTs, so a Koa middleware placed ahead of its router implements
 * `If-None-Match: *` (412 when the object exists) and `If-Match: <etag>` (412 when it differs, 404
 * when the object is missing). Every request on one key holds a per-key mutex until its response
 * has been sent, so the check and the write are atomic and reads never see a half-written object
 * (s3rver writes objects in place). A second middleware injects the faults of
 * {@link S3TestServer.faults} (latency, 503s, dropped connections, 409 races) for every client;
 * for faults seen by one client only, put a storage-faults proxy in front.
 */
import { mkdtemp, rm } from "node:fs/promises";
import type { Server, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "../../src/shared/sleep.js";
import { KeyMutex } from "../../src/storage/key-mutex.js";
import { INJECTED_ANSWERS, StorageFaults, storageRequestOf } from "./storage-faults.js";

/** Bucket the server creates when none is named. */
export const DEFAULT_S3_TEST_BUCKET = "nstance-test";
/** The access key pair s3rver accepts out of the box. */
const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/** A running test server. */
export interface S3TestServer {
  /** `http://127.0.0.1:port`. */
  endpoint: string;
  bucket: string;
  /** AWS variables that point createStorage's s3 backend at this server. */
  env: Record<string, string>;
  /** Faults for every client, on command: `faults.set({ latencyMs, errorRate, drop, … })`. */
  faults: StorageFaults;
  /** Conditional PUTs answered 412 (or 404) so far; for tests. */
  readonly stats: { preconditionFailures: number };
  stop(): Promise<void>;
}

/** Options for {@link startS3Server}. */
export interface S3ServerOptions {
  /** Defaults to {@link DEFAULT_S3_TEST_BUCKET}. */
  bucket?: string;
  /** The fault switchboard; a new one (no faults) by default. */
  faults?: StorageFaults;
}

/** An object as s3rver's store lists it. */
interface S3rverObject {
  key: string;
  size: number;
  lastModifiedDate: Date;
  metadata: { etag: string };
}

/** The parts of a Koa context the middlewares use. */
interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  res: ServerResponse;
  body: unknown;
  get(header: string): string;
  store: {
    getBucket(bucket: string): Promise<unknown>;
    getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
    listObjects(bucket: string, opts: { prefix: string }): Promise<{ objects: S3rverObject[] }>;
  };
}
type KoaMiddleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

/** The parts of s3rver used here (it ships no types). */
interface S3rverApp {
  middleware: KoaMiddleware[];
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverApp;
type S3ErrorCtor = new (code: string, message: string, detail?: Record<string, string>) => Error;

const require = createRequire(import.meta.url);

/** Starts s3rver with conditional-write support on 127.0.0.1, port 0. */
export async function startS3Server(opts: S3ServerOptions = {}): Promise<S3TestServer> {
  const S3rver = require("s3rver") as S3rverCtor;
  const S3Error = require("s3rver/lib/models/error") as S3ErrorCtor;
  const bucket = opts.bucket ?? DEFAULT_S3_TEST_BUCKET;
  const directory = await mkdtemp(join(tmpdir(), "nstance-s3rver-"));
  const app = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  const faults = opts.faults ?? new StorageFaults();
  const stats = { preconditionFailures: 0 };
  const locks = new KeyMutex();

  const injectFaults: KoaMiddleware = async (ctx, next) => {
    const decision = faults.decide(
      storageRequestOf(ctx.method, ctx.path, (h) => ctx.get(h) || undefined),
    );
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    switch (decision.action) {
      case "drop":
        ctx.res.socket?.destroy();
        return;
      case "error":
      case "conflict": {
        const a = INJECTED_ANSWERS[decision.action];
        const err = new S3Error(a.code, a.message);
        // s3rver's table has no 409 for this code.
        Object.assign(err, { status: a.status, expose: true });
        throw err;
      }
      case "drop-response":
        await next();
        // Koa writes the answer after the middlewares return: the write is applied, never answered.
        ctx.res.socket?.destroy();
        return;
      case "forward":
        await next();
        return;
    }
  };

  const conditionalWrites: KoaMiddleware = async (ctx, next) => {
    // After s3rver's vhost middleware every request is path-style: /bucket/key.
    const m = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
    if (!m) {
      const list = /^\/([^/]+)\/?$/.exec(ctx.path);
      if (list && ctx.method === "GET" && ctx.query["list-type"] === "2") {
        await listObjectsV2(ctx, decodeURIComponent(list[1]!), S3Error);
        return;
      }
      await next();
      return;
    }
    const b = decodeURIComponent(m[1]!);
    const key = m[2]!.split("/").map(decodeURIComponent).join("/");
    await holdUntilResponded(locks, `${b}/${key}`, ctx.res);
    const ifNoneMatch = ctx.get("if-none-match");
    const ifMatch = ctx.get("if-match");
    if (ctx.method === "PUT" && (ifNoneMatch || ifMatch)) {
      const etag = await ctx.store.getMetadata(b, key).then(
        (md) => unquote(md.etag),
        (err: NodeJS.ErrnoException) => {
          if (err.code === "ENOENT") return undefined;
          throw err;
        },
      );
      if (ifNoneMatch) {
        if (ifNoneMatch.trim() !== "*") {
          throw new S3Error("NotImplemented", "If-None-Match on PUT supports only *");
        }
        if (etag !== undefined) {
          stats.preconditionFailures++;
          throw new S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            { Condition: "If-None-Match" },
          );
        }
      }
      if (ifMatch) {
        if (etag === undefined) {
          stats.preconditionFailures++;
          throw new S3Error("NoSuchKey", "The specified key does not exist.", { Key: key });
        }
        const wanted = ifMatch.split(",").map((t) => unquote(t.trim()));
        if (!wanted.includes("*") && !wanted.includes(etag)) {
          stats.preconditionFailures++;
          throw new S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            { Condition: "If-Match" },
          );
        }
      }
    }
    await next();
  };

  // s3rver's stack is [logger, xml body, mount, vhost, router]: faults go first, the conditional
  // check right before the router (Koa composes the array when the server starts).
  const routerIndex = app.middleware.length - 1;
  app.middleware.splice(routerIndex, 0, conditionalWrites);
  app.middleware.unshift(injectFaults);

  const address = await app.run();
  const endpoint = `http://127.0.0.1:${address.port}`;
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    bucket,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_S3_USE_PATH_STYLE: "true",
    },
    faults,
    stats,
    stop() {
      stopped ??= (async () => {
        const closing = app.close();
        app.httpServer?.closeAllConnections();
        await closing;
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/**
 * Takes the mutex for `key` and keeps it until `res` has been sent or the connection closed.
 * Koa writes the response only after every middleware returned, so the holder cannot simply
 * await it inside the middleware.
 */
async function holdUntilResponded(
  locks: KeyMutex,
  key: string,
  res: ServerResponse,
): Promise<void> {
  await new Promise<void>((acquired, failed) => {
    locks
      .run(
        key,
        () =>
          new Promise<void>((release) => {
            acquired();
            if (res.writableFinished || res.destroyed) release();
            res.once("finish", release);
            res.once("close", release);
          }),
      )
      .catch(failed);
  });
}

/**
 * ListObjectsV2, answered here because s3rver's own version cannot page on OpenSSL 3 (its
 * continuation tokens use DES) and walks directories unsorted. The token is the last key
 * returned, base64url-encoded.
 */
async function listObjectsV2(ctx: KoaContext, bucket: string, S3Error: S3ErrorCtor): Promise<void> {
  if (!(await ctx.store.getBucket(bucket))) {
    throw new S3Error("NoSuchBucket", "The specified bucket does not exist", {
      BucketName: bucket,
    });
  }
  const q = (name: string): string | undefined => {
    const v = ctx.query[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const prefix = q("prefix") ?? "";
  const delimiter = q("delimiter") ?? "";
  const maxKeys = Math.min(1000, Number(q("max-keys") ?? 1000));
  const token = q("continuation-token");
  const startAfter = token
    ? Buffer.from(token, "base64url").toString("utf8")
    : (q("start-after") ?? "");
  const { objects } = await ctx.store.listObjects(bucket, { prefix });
  objects.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
  const contents: S3rverObject[] = [];
  const commonPrefixes: string[] = [];
  let last: string | undefined;
  let truncated = false;
  for (const o of objects) {
    if (Buffer.compare(Buffer.from(o.key), Buffer.from(startAfter)) <= 0) continue;
    const cut = delimiter ? o.key.indexOf(delimiter, prefix.length) : -1;
    const common = cut >= 0 ? o.key.slice(0, cut + delimiter.length) : undefined;
    if (common !== undefined && common === commonPrefixes.at(-1)) continue;
    if (contents.length + commonPrefixes.length >= maxKeys) {
      truncated = true;
      break;
    }
    if (common !== undefined) {
      commonPrefixes.push(common);
      // Continue after every key under this common prefix.
      last = `${common}\u{10ffff}`;
    } else {
      contents.push(o);
      last = o.key;
    }
  }
  ctx.body = {
    ListBucketResult: {
      "@": { xmlns: "http://doc.s3.amazonaws.com/2006-03-01/" },
      Name: bucket,
      Prefix: prefix,
      ...(token ? { ContinuationToken: token } : {}),
      ...(truncated && last !== undefined
        ? { NextContinuationToken: Buffer.from(last, "utf8").toString("base64url") }
        : {}),
      KeyCount: contents.length + commonPrefixes.length,
      MaxKeys: maxKeys,
      ...(delimiter ? { Delimiter: delimiter } : {}),
      IsTruncated: truncated,
      Contents: contents.map((o) => ({
        Key: o.key,
        LastModified: o.lastModifiedDate.toISOString(),
        ETag: o.metadata.etag,
        Size: o.size,
        StorageClass: "STANDARD",
      })),
      CommonPrefixes: commonPrefixes.map((p) => ({ Prefix: p })),
    },
  };
}

function unquote(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}
