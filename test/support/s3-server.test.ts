// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { S3TestServer } from "./s3-server.js";
import { startS3Server } from "./s3-server.js";

let srv: S3TestServer;
let client: S3Client;

before(async () => {
  srv = await startS3Server({ bucket: "support-test" });
  client = new S3Client({
    endpoint: srv.endpoint,
    region: srv.env.AWS_REGION,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: {
      accessKeyId: srv.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: srv.env.AWS_SECRET_ACCESS_KEY!,
    },
  });
});
after(async () => {
  client?.destroy();
  await srv?.stop();
});

/** A raw HTTP PUT (unsigned: s3rver accepts anonymous requests), returning the status. */
async function rawPut(key: string, body: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${srv.endpoint}/${srv.bucket}/${key}`, { method: "PUT", body, headers });
  await res.arrayBuffer();
  return res.status;
}

const statusOf = (err: unknown): number | undefined =>
  (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

describe("s3-server", () => {
  it("serves the bucket with the credentials in env", async () => {
    assert.equal(srv.bucket, "support-test");
    assert.match(srv.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(srv.env.AWS_ENDPOINT_URL, srv.endpoint);
    assert.equal(srv.env.AWS_S3_USE_PATH_STYLE, "true");
    await client.send(new PutObjectCommand({ Bucket: srv.bucket, Key: "plain", Body: "x" }));
    const out = await client.send(new GetObjectCommand({ Bucket: srv.bucket, Key: "plain" }));
    assert.equal(await out.Body?.transformToString(), "x");
  });

  it("If-None-Match: * creates once, then answers 412", async () => {
    const put = (body: string) =>
      client.send(
        new PutObjectCommand({ Bucket: srv.bucket, Key: "inm", Body: body, IfNoneMatch: "*" }),
      );
    await put("first");
    await assert.rejects(put("second"), (err: unknown) => statusOf(err) === 412);
    const out = await client.send(new GetObjectCommand({ Bucket: srv.bucket, Key: "inm" }));
    assert.equal(await out.Body?.transformToString(), "first");
  });

  it("If-Match: 200 on the current etag, 412 on another, 404 when missing", async () => {
    const first = await client.send(
      new PutObjectCommand({ Bucket: srv.bucket, Key: "im", Body: "v1" }),
    );
    const putIfMatch = (body: string, etag: string) =>
      client.send(
        new PutObjectCommand({ Bucket: srv.bucket, Key: "im", Body: body, IfMatch: etag }),
      );
    const second = await putIfMatch("v2", first.ETag!);
    assert.notEqual(second.ETag, first.ETag);
    await assert.rejects(putIfMatch("v3", first.ETag!), (err: unknown) => statusOf(err) === 412);
    await assert.rejects(
      client.send(
        new PutObjectCommand({
          Bucket: srv.bucket,
          Key: "im-missing",
          Body: "x",
          IfMatch: first.ETag!,
        }),
      ),
      (err: unknown) => statusOf(err) === 404,
    );
    assert.equal(srv.stats.preconditionFailures >= 2, true);
  });

  it("compares etags with or without quotes", async () => {
    const put = await client.send(
      new PutObjectCommand({ Bucket: srv.bucket, Key: "q", Body: "v1" }),
    );
    const bare = put.ETag!.replace(/"/g, "");
    assert.notEqual(bare, put.ETag);
    assert.equal(await rawPut("q", "v2", { "if-match": bare }), 200);
    assert.equal(await rawPut("q", "v3", { "if-match": bare }), 412, "etag changed with v2");
    const now = await client.send(new GetObjectCommand({ Bucket: srv.bucket, Key: "q" }));
    assert.equal(await rawPut("q", "v4", { "if-match": now.ETag! }), 200, "quoted etag");
  });

  it("conditional PUTs on one key are atomic: 20 concurrent create-only, one 200", async () => {
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => rawPut("atomic", `w${i}`, { "if-none-match": "*" })),
    );
    assert.equal(statuses.filter((s) => s === 200).length, 1, JSON.stringify(statuses));
    assert.equal(statuses.filter((s) => s === 412).length, 19);
  });

  it("lists with ListObjectsV2 in key order across pages, with delimiters", async () => {
    const keys = ["l/b", "l/a", "l/c/1", "l/c/2", "l/d", "l/e/x/y", "l/f"];
    for (const k of keys)
      await client.send(new PutObjectCommand({ Bucket: srv.bucket, Key: k, Body: k }));
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: srv.bucket,
          Prefix: "l/",
          MaxKeys: 2,
          ContinuationToken: token,
        }),
      );
      pages++;
      seen.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    assert.deepEqual(seen, [...keys].sort());
    assert.equal(pages, 4);
    const delimited = await client.send(
      new ListObjectsV2Command({ Bucket: srv.bucket, Prefix: "l/", Delimiter: "/" }),
    );
    assert.deepEqual(
      delimited.Contents?.map((o) => o.Key),
      ["l/a", "l/b", "l/d", "l/f"],
    );
    assert.deepEqual(
      delimited.CommonPrefixes?.map((p) => p.Prefix),
      ["l/c/", "l/e/"],
    );
    // One entry per page: a common prefix takes one slot and is not repeated on the next page.
    const entries: string[] = [];
    let next: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({
          Bucket: srv.bucket,
          Prefix: "l/",
          Delimiter: "/",
          MaxKeys: 1,
          ContinuationToken: next,
        }),
      );
      entries.push(
        ...(page.Contents ?? []).map((o) => o.Key!),
        ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!),
      );
      next = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (next);
    assert.deepEqual(entries, ["l/a", "l/b", "l/c/", "l/d", "l/e/", "l/f"]);
  });

  it("injects 503s, dropped connections, 409 races and latency on demand", async () => {
    srv.faults.set({ failNext5xx: 1 });
    assert.equal(await rawPut("f", "x", {}), 503);
    assert.equal(await rawPut("f", "x", {}), 200);
    srv.faults.set({ resetNext: 1 });
    await assert.rejects(rawPut("f", "x", {}));
    assert.equal(await rawPut("f", "x", {}), 200);
    srv.faults.set({ conflict: 1 });
    assert.equal(await rawPut("f", "x", {}), 200, "only conditional PUTs race");
    assert.equal(await rawPut("f-new", "x", { "if-none-match": "*" }), 409);
    assert.equal(await rawPut("f-new", "x", { "if-none-match": "*" }), 409);
    srv.faults.clear();
    assert.equal(await rawPut("f-new", "x", { "if-none-match": "*" }), 200, "409 applied nothing");
    srv.faults.set({ latencyMs: 150 });
    const started = Date.now();
    assert.equal(await rawPut("f", "x", {}), 200);
    srv.faults.clear();
    assert.ok(Date.now() - started >= 140, "latency applied");
  });

  it("a dropped response still applies the write", async () => {
    srv.faults.set({ dropResponse: 1 });
    await assert.rejects(rawPut("applied", "written", {}));
    srv.faults.clear();
    const out = await client.send(new GetObjectCommand({ Bucket: srv.bucket, Key: "applied" }));
    assert.equal(await out.Body?.transformToString(), "written");
  });
});
