// SPDX-License-Identifier: Apache-2.0
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import type { GcsTestServer } from "../../test/support/gcs-server.js";
import { startGcsServer } from "../../test/support/gcs-server.js";
import type { S3TestServer } from "../../test/support/s3-server.js";
import { startS3Server } from "../../test/support/s3-server.js";
import { createStorage } from "./create-storage.js";
import { FileStorage } from "./file-storage.js";
import { MemoryStorage } from "./memory-storage.js";
import { runStorageContract } from "./object-storage.contract.js";
import { ScopedStorage } from "./scoped-storage.js";

let dir: string;
let s3: S3TestServer;
let gcs: GcsTestServer;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "nstance-contract-"));
  [s3, gcs] = await Promise.all([startS3Server(), startGcsServer()]);
});

after(async () => {
  await Promise.all([s3?.stop(), gcs?.stop(), dir && rm(dir, { recursive: true, force: true })]);
});

runStorageContract("memory", () => new MemoryStorage());
runStorageContract("file", () => new FileStorage({ dir: join(dir, "bucket") }));
runStorageContract("scoped(memory)", () => {
  return new ScopedStorage({ storage: new MemoryStorage(), prefix: "shard/us-west-2a/" });
});
// The cloud backends go through createStorage, as the server builds them, with small list pages
// so that pagination is exercised.
runStorageContract("s3 (s3rver)", () =>
  createStorage({ kind: "s3", bucket: s3.bucket, listPageSize: 3 }, s3.env),
);
runStorageContract("gcs (test server)", () =>
  createStorage({ kind: "gcs", bucket: gcs.bucket, listPageSize: 3 }, gcs.env),
);
