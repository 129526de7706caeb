// SPDX-License-Identifier: Apache-2.0
// nstance-admin as a real process (`node bin/nstance-admin.js`): exit codes, a nonce piped from
// `cluster nonce` into `register-operator --nonce-file -`, and a group list over mTLS dialled by
// IP without a Node deprecation warning on stderr.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { FakeOperatorServer, FakeRegistrationServer } from "../../src/admin/testing.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../../src/pki/cluster-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { issueServerCertificate } from "../../src/pki/issue-certificate.js";
import type { TestPki } from "../../src/pki/testing.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FileStorage } from "../../src/storage/file-storage.js";

const BIN = fileURLToPath(new URL("../../bin/nstance-admin.js", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function admin(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? "");
  });
}

describe("nstance-admin process", () => {
  let tmp: string;
  let bucket: string;
  let identity: ClusterIdentity;
  let registration: FakeRegistrationServer;
  let operatorApi: FakeOperatorServer;
  const env = { NSTANCE_KEY: randomBytes(32).toString("base64") };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-process-"));
    bucket = join(tmp, "bucket");
    identity = await ensureClusterIdentity({
      storage: new FileStorage({ dir: bucket, fsync: false }),
      clusterId: "prod-1",
      encryptionKey: Buffer.from(env.NSTANCE_KEY, "base64"),
      logger: silentLogger,
    });
    const keys = generateEd25519KeyPair();
    const cert = await issueServerCertificate({ ca: identity.ca, publicKeyPem: keys.publicKeyPem });
    const pki: TestPki = {
      ca: identity.ca,
      caCertPem: identity.ca.certPem,
      server: { certPem: cert.certificatePem, keyPem: keys.privateKeyPem },
    };
    registration = await new FakeRegistrationServer({
      ca: identity.ca,
      nonceVerifyKey: identity.nonceVerifyKey,
      clusterId: "prod-1",
    }).start(pki);
    operatorApi = await new FakeOperatorServer().start(pki);
    operatorApi.addGroup({ key: "web", template: "knc", size: 2 });
  });

  after(async () => {
    await Promise.all([registration.stop(), operatorApi.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  it("exits 2 on a usage error, with the message on stderr only", async () => {
    const r = await admin(["group", "list", "--servers", "a=h:1,b=h:2"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^error: choose a shard with --shard/);
  });

  it("cluster nonce | cluster register-operator --nonce-file - | group list (by IP)", async () => {
    const nonce = await admin(
      [
        "cluster",
        "nonce",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--cluster-id",
        "prod-1",
        "--encryption-key-env",
        "NSTANCE_KEY",
      ],
      env,
    );
    assert.equal(nonce.code, 0, nonce.stderr);
    assert.match(nonce.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);

    const idDir = join(tmp, "identity");
    const port = registration.address.split(":")[1];
    const reg = await admin(
      [
        "cluster",
        "register-operator",
        "--nonce-file",
        "-",
        "--registration-addr",
        `localhost:${port}`,
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--identity-dir",
        idDir,
        "--json",
      ],
      {},
      nonce.stdout,
    );
    assert.equal(reg.code, 0, reg.stderr);
    assert.equal((JSON.parse(reg.stdout) as { tenant: string }).tenant, "default");

    const apiPort = operatorApi.address.split(":")[1];
    const list = await admin(["group", "list"], {
      NSTANCE_ADMIN_SERVERS: `us-west-2a=127.0.0.1:${apiPort}`,
      NSTANCE_ADMIN_IDENTITY_DIR: idDir,
    });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^us-west-2a +web +knc +2 /m);
    assert.equal(list.stderr, "", "no warnings when dialling an IP");
  });
});
