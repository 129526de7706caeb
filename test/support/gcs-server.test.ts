// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { CRC32C, Storage } from "@google-cloud/storage";
import type { GcsTestServer } from "./gcs-server.js";
import { crc32c, crc32cBase64, startGcsServer } from "./gcs-server.js";

let srv: GcsTestServer;
let storage: Storage;

before(async () => {
  srv = await startGcsServer({ buckets: ["support-test", "second"] });
  storage = new Storage({
    apiEndpoint: srv.endpoint,
    projectId: "test",
    retryOptions: { autoRetry: false },
  });
});
after(async () => {
  await srv?.stop();
});

const api = (path: string, init?: RequestInit): Promise<Response> =>
  fetch(`${srv.endpoint}${path}`, init);
const bucketPath = (b = "support-test"): string => `/storage/v1/b/${b}/o`;

describe("gcs-server", () => {
  it("computes CRC-32C as GCS does", () => {
    // The standard check value of CRC-32C.
    assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
    const data = Buffer.from("hello, storage");
    const theirs = new CRC32C();
    theirs.update(data);
    assert.equal(crc32cBase64(data), theirs.toString());
  });

  it("works with the real client: save, download (hash-validated), metadata, delete", async () => {
    const file = storage.bucket("support-test").file("dir/obj name.txt");
    const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
    await file.save(body, { resumable: false, contentType: "application/octet-stream" });
    const [md] = await file.getMetadata();
    assert.equal(md.md5Hash, createHash("md5").update(body).digest("base64"));
    assert.equal(md.crc32c, crc32cBase64(body));
    assert.equal(md.size, "1000");
    const [downloaded] = await file.download({ validation: "crc32c" });
    assert.ok(downloaded.equals(body));
    const [md5Checked] = await file.download({ validation: "md5" });
    assert.ok(md5Checked.equals(body));
    await file.delete();
    const [exists] = await file.exists();
    assert.equal(exists, false);
  });

  it("serves /download/storage/v1 with x-goog-hash and generation headers", async () => {
    const up = await api(`/upload/storage/v1/b/support-test/o?uploadType=media&name=raw`, {
      method: "POST",
      body: "raw body",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(up.status, 200);
    const meta = (await up.json()) as { generation: string; md5Hash: string; crc32c: string };
    const res = await api(`/download/storage/v1/b/support-test/o/raw?alt=media`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "raw body");
    assert.equal(res.headers.get("x-goog-generation"), meta.generation);
    assert.equal(res.headers.get("x-goog-hash"), `crc32c=${meta.crc32c},md5=${meta.md5Hash}`);
    assert.equal(res.headers.get("content-type"), "text/plain");
  });

  it("applies ifGenerationMatch on upload and delete", async () => {
    const upload = (gen: string) =>
      api(
        `/upload/storage/v1/b/support-test/o?uploadType=media&name=cas&ifGenerationMatch=${gen}`,
        {
          method: "POST",
          body: `at ${gen}`,
        },
      );
    const created = await upload("0");
    assert.equal(created.status, 200);
    const { generation } = (await created.json()) as { generation: string };
    assert.equal((await upload("0")).status, 412, "create-only on an existing object");
    assert.equal((await upload("1")).status, 412, "stale generation");
    const replaced = await upload(generation);
    assert.equal(replaced.status, 200);
    const next = ((await replaced.json()) as { generation: string }).generation;
    assert.ok(BigInt(next) > BigInt(generation), "generations grow");
    const del = (gen: string) =>
      api(`${bucketPath()}/cas?ifGenerationMatch=${gen}`, { method: "DELETE" });
    assert.equal((await del(generation)).status, 412);
    assert.equal((await del(next)).status, 204);
    assert.equal((await del(next)).status, 404);
  });

  it("lists by prefix with pages and delimiters; accepts emulator-style paths", async () => {
    const b = storage.bucket("second");
    const names = ["p/b", "p/a", "p/c/1", "p/c/2", "p/d", "q/x"];
    for (const n of names) await b.file(n).save(n, { resumable: false });
    const seen: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const res = await api(
        `/b/second/o?prefix=p/&maxResults=2${pageToken ? `&pageToken=${pageToken}` : ""}`,
      );
      const page = (await res.json()) as { items: Array<{ name: string }>; nextPageToken?: string };
      pages++;
      seen.push(...page.items.map((i) => i.name));
      pageToken = page.nextPageToken;
    } while (pageToken);
    assert.deepEqual(seen, ["p/a", "p/b", "p/c/1", "p/c/2", "p/d"]);
    assert.equal(pages, 3);
    const res = await api(`${bucketPath("second")}?prefix=p/&delimiter=/`);
    const delimited = (await res.json()) as { items: Array<{ name: string }>; prefixes: string[] };
    assert.deepEqual(
      delimited.items.map((i) => i.name),
      ["p/a", "p/b", "p/d"],
    );
    assert.deepEqual(delimited.prefixes, ["p/c/"]);
    // One entry per page: a common prefix takes one slot and is not repeated on the next page.
    const entries: string[] = [];
    let token: string | undefined;
    do {
      const r = await api(
        `${bucketPath("second")}?prefix=p/&delimiter=/&maxResults=1${token ? `&pageToken=${token}` : ""}`,
      );
      const page = (await r.json()) as {
        items: Array<{ name: string }>;
        prefixes?: string[];
        nextPageToken?: string;
      };
      entries.push(...page.items.map((i) => i.name), ...(page.prefixes ?? []));
      token = page.nextPageToken;
    } while (token);
    assert.deepEqual(entries, ["p/a", "p/b", "p/c/", "p/d"]);
  });

  it("answers JSON errors for missing objects, buckets and unsupported uploads", async () => {
    const missing = await api(`${bucketPath()}/nope`);
    assert.equal(missing.status, 404);
    const body = (await missing.json()) as {
      error: { code: number; errors: Array<{ reason: string }> };
    };
    assert.equal(body.error.code, 404);
    assert.equal(body.error.errors[0]?.reason, "notFound");
    assert.equal((await api(`${bucketPath("no-such-bucket")}/x`)).status, 404);
    const resumable = await api(`/upload/storage/v1/b/support-test/o?uploadType=resumable&name=r`, {
      method: "POST",
      body: "{}",
    });
    assert.equal(resumable.status, 501);
  });

  it("injects 503s and latency on demand", async () => {
    srv.faults.failNext5xx = 1;
    assert.equal((await api(`${bucketPath()}`)).status, 503);
    assert.equal((await api(`${bucketPath()}`)).status, 200);
    srv.faults.latencyMs = 150;
    const started = Date.now();
    assert.equal((await api(`${bucketPath()}`)).status, 200);
    srv.faults.latencyMs = 0;
    assert.ok(Date.now() - started >= 140);
  });
});
