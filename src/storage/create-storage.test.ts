// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startS3Server } from "../../test/support/s3-server.js";
import { NstanceError } from "../shared/errors.js";
import { createStorage } from "./create-storage.js";
import { RetryingStorage } from "./retrying-storage.js";

const isInvalidArgument = (re: RegExp) => (err: unknown) =>
  err instanceof NstanceError && err.code === "invalid_argument" && re.test(err.message);

describe("createStorage", () => {
  it("rejects an unknown kind with a one-line reason", async () => {
    await assert.rejects(
      createStorage({ kind: "ftp", bucket: "b" }, {}),
      isInvalidArgument(/^unknown storage kind "ftp" \(want one of file, s3, gcs, memory\)$/),
    );
  });

  it("requires a bucket except for memory", async () => {
    await assert.rejects(
      createStorage({ kind: "s3", bucket: "" }, {}),
      isInvalidArgument(/bucket/),
    );
    const mem = await createStorage({ kind: "memory", bucket: "" }, {});
    assert.equal(mem.description, "memory:default");
  });

  it("wraps backends in RetryingStorage unless retry is false", async () => {
    assert.ok(
      (await createStorage({ kind: "memory", bucket: "m" }, {})) instanceof RetryingStorage,
    );
    const bare = await createStorage({ kind: "memory", bucket: "m", retry: false }, {});
    assert.ok(!(bare instanceof RetryingStorage));
  });

  it("file: the bucket is a directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-create-storage-"));
    try {
      const s = await createStorage({ kind: "file", bucket: join(dir, "b") }, {});
      assert.equal(s.description, `file:${join(dir, "b")}`);
      await s.put("k", "v");
      assert.equal((await s.get("k"))?.body.toString(), "v");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("s3: endpoint, region, credentials and path style come from the env argument", async () => {
    const srv = await startS3Server();
    try {
      const s = await createStorage({ kind: "s3", bucket: srv.bucket }, srv.env);
      assert.equal(s.description, `s3://${srv.bucket}`);
      await s.put("env/k", "v");
      assert.equal((await s.get("env/k"))?.body.toString(), "v");
      // s3rver refuses unknown access keys, which shows the env's credentials are the ones used.
      const wrong = await createStorage(
        { kind: "s3", bucket: srv.bucket, retry: false },
        { ...srv.env, AWS_ACCESS_KEY_ID: "WRONG", AWS_SECRET_ACCESS_KEY: "WRONG" },
      );
      await assert.rejects(wrong.get("env/k"), /InvalidAccessKeyId|access key/i);
    } finally {
      await srv.stop();
    }
  });
});
