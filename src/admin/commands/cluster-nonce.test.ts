// SPDX-License-Identifier: Apache-2.0
// `cluster nonce` against a file bucket seeded by the server's own ensureClusterIdentity.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ClusterIdentity, ensureClusterIdentity } from "../../pki/cluster-identity.js";
import { verifyNonceJwt } from "../../pki/nonce-jwt.js";
import { silentLogger } from "../../shared/logger.js";
import { FileStorage } from "../../storage/file-storage.js";
import { runAdmin } from "../main.js";
import { captureIo } from "../testing.js";

describe("nstance-admin cluster nonce", () => {
  let tmp: string;
  let bucket: string;
  let plainBucket: string;
  let identity: ClusterIdentity;
  const key = randomBytes(32);
  const env = { NSTANCE_KEY: key.toString("base64") };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-nonce-"));
    bucket = join(tmp, "bucket");
    plainBucket = join(tmp, "plain");
    identity = await ensureClusterIdentity({
      storage: new FileStorage({ dir: bucket, fsync: false }),
      clusterId: "prod-1",
      encryptionKey: key,
      logger: silentLogger,
    });
    await ensureClusterIdentity({
      storage: new FileStorage({ dir: plainBucket, fsync: false }),
      clusterId: "dev",
      encryptionKey: undefined,
      logger: silentLogger,
    });
    await writeFile(join(tmp, "key.bin"), key);
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const nonce = async (extra: string[], e: Record<string, string> = env) => {
    const io = captureIo(e);
    const code = await runAdmin(
      [
        "cluster",
        "nonce",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--cluster-id",
        "prod-1",
        ...extra,
      ],
      io,
    );
    return { code, out: io.out(), err: io.err() };
  };

  it("prints only the JWT: an operator nonce for the cluster, tenant default, valid 3h", async () => {
    const before = Date.now();
    const { code, out, err } = await nonce(["--encryption-key-env", "NSTANCE_KEY"]);
    assert.equal(code, 0, err);
    assert.equal(err, "");
    assert.match(out, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, "a single JWT line");
    const claims = await verifyNonceJwt(out.trim(), {
      verifyKey: identity.nonceVerifyKey,
      kind: "operator",
      clusterId: "prod-1",
    });
    assert.equal(claims.subject, "prod-1");
    assert.equal(claims.tenant, "default");
    const lifetime = claims.expiresAt.getTime() - before;
    assert.ok(lifetime > 3 * 3_600_000 - 5_000 && lifetime <= 3 * 3_600_000 + 1_000, `${lifetime}`);
  });

  it("honours --tenant, --expiry, the key file and --json", async () => {
    const { code, out, err } = await nonce([
      "--encryption-key-file",
      join(tmp, "key.bin"),
      "--tenant",
      "acme",
      "--expiry",
      "10m",
      "--json",
    ]);
    assert.equal(code, 0, err);
    const doc = JSON.parse(out) as Record<string, string>;
    assert.equal(doc.cluster_id, "prod-1");
    assert.equal(doc.tenant, "acme");
    const claims = await verifyNonceJwt(doc.nonce_jwt!, {
      verifyKey: identity.nonceVerifyKey,
      kind: "operator",
      clusterId: "prod-1",
    });
    assert.equal(claims.tenant, "acme");
    assert.equal(claims.expiresAt.toISOString(), doc.expires_at);
    const lifetime = claims.expiresAt.getTime() - claims.issuedAt.getTime();
    assert.equal(lifetime, 600_000);
  });

  it("--output writes the nonce to a 0600 file and says where", async () => {
    const path = join(tmp, "out", "nonce.jwt");
    const { code, out, err } = await nonce([
      "--encryption-key-env",
      "NSTANCE_KEY",
      "--output",
      path,
    ]);
    assert.equal(code, 0, err);
    assert.match(out, new RegExp(`^Nonce written to ${path} \\(tenant default, expires `));
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const token = (await readFile(path, "utf8")).trim();
    await verifyNonceJwt(token, {
      verifyKey: identity.nonceVerifyKey,
      kind: "operator",
      clusterId: "prod-1",
    });
    assert.doesNotMatch(out, new RegExp(token.slice(-20)), "the token is not printed");
  });

  it("works without a key when the cluster's secrets are plaintext", async () => {
    const io = captureIo({});
    const code = await runAdmin(
      ["cluster", "nonce", "--storage", "file", "--bucket", plainBucket, "--cluster-id", "dev"],
      io,
    );
    assert.equal(code, 0, io.err());
  });

  it("encrypted secrets without a key: exit 2 naming the flags", async () => {
    const { code, out, err } = await nonce([]);
    assert.equal(code, 2);
    assert.equal(out, "");
    assert.match(
      err,
      /registration-nonce\.key is encrypted but no encryption key was given \(--encryption-key-env/,
    );
  });

  it("the wrong key: exit 2", async () => {
    const { code, err } = await nonce(["--encryption-key-env", "OTHER"], {
      OTHER: randomBytes(32).toString("hex"),
    });
    assert.equal(code, 2);
    assert.match(
      err,
      /cannot decrypt cluster\/secret\/registration-nonce\.key with the given encryption key/,
    );
  });

  it("another cluster's bucket: exit 2, nothing minted", async () => {
    const io = captureIo(env);
    const code = await runAdmin(
      [
        "cluster",
        "nonce",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--cluster-id",
        "prod-2",
        "--encryption-key-env",
        "NSTANCE_KEY",
      ],
      io,
    );
    assert.equal(code, 2);
    assert.equal(io.out(), "");
    assert.match(io.err(), /holds cluster "prod-1", not "prod-2"/);
  });

  it("an empty bucket: exit 4 saying what is missing", async () => {
    const io = captureIo(env);
    const code = await runAdmin(
      [
        "cluster",
        "nonce",
        "--storage",
        "file",
        "--bucket",
        join(tmp, "empty"),
        "--cluster-id",
        "prod-1",
        "--encryption-key-env",
        "NSTANCE_KEY",
      ],
      io,
    );
    assert.equal(code, 4);
    assert.match(
      io.err(),
      /^error: cluster\/secret\/registration-nonce\.key not found in file:.*has a server started with it\?\n$/,
    );
  });
});
