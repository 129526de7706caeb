// SPDX-License-Identifier: Apache-2.0
// `cluster register-operator` in direct mode (CA key from a file bucket seeded by
// ensureClusterIdentity) and in nonce mode (a fake Registration API over TLS 1.3).
import assert from "node:assert/strict";
import { createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseClientIdentity } from "../../pki/client-identity.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../../pki/cluster-identity.js";
import { generateEd25519KeyPair } from "../../pki/ed25519-keys.js";
import { issueServerCertificate } from "../../pki/issue-certificate.js";
import { mintNonceJwt } from "../../pki/nonce-jwt.js";
import type { TestPki } from "../../pki/testing.js";
import { silentLogger } from "../../shared/logger.js";
import { FileStorage } from "../../storage/file-storage.js";
import { runAdmin } from "../main.js";
import { loadOperatorIdentity } from "../service/operator-identity.js";
import { captureIo, FakeOperatorServer, FakeRegistrationServer } from "../testing.js";

describe("nstance-admin cluster register-operator", () => {
  let tmp: string;
  let bucket: string;
  let storage: FileStorage;
  let identity: ClusterIdentity;
  let pki: TestPki;
  let registration: FakeRegistrationServer;
  let operatorApi: FakeOperatorServer;
  const key = randomBytes(32);
  const env = { NSTANCE_KEY: key.toString("hex") };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-register-"));
    bucket = join(tmp, "bucket");
    storage = new FileStorage({ dir: bucket, fsync: false });
    identity = await ensureClusterIdentity({
      storage,
      clusterId: "prod-1",
      encryptionKey: key,
      logger: silentLogger,
    });
    // The fake servers use the real cluster CA, so an issued identity works against them.
    const serverKeys = generateEd25519KeyPair();
    const serverCert = await issueServerCertificate({
      ca: identity.ca,
      publicKeyPem: serverKeys.publicKeyPem,
    });
    pki = {
      ca: identity.ca,
      caCertPem: identity.ca.certPem,
      server: { certPem: serverCert.certificatePem, keyPem: serverKeys.privateKeyPem },
    };
    registration = await new FakeRegistrationServer({
      ca: identity.ca,
      nonceVerifyKey: identity.nonceVerifyKey,
      clusterId: "prod-1",
    }).start(pki);
    operatorApi = await new FakeOperatorServer().start(pki);
    operatorApi.addGroup({ key: "web", tenant: "acme" });
    await writeFile(join(tmp, "ca.crt"), identity.ca.certPem);
  });

  after(async () => {
    await Promise.all([registration.stop(), operatorApi.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  const run = async (args: string[], stdin?: string) => {
    const io = captureIo(env, stdin);
    const code = await runAdmin(args, io);
    return { code, out: io.out(), err: io.err() };
  };

  const expectIdentityFiles = async (dir: string) => {
    for (const f of ["ca.crt", "identity.key", "identity.crt"]) {
      assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, `${f} is 0600`);
    }
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    const certPem = await readFile(join(dir, "identity.crt"), "utf8");
    assert.ok(
      new X509Certificate(certPem).verify(new X509Certificate(identity.ca.certPem).publicKey),
    );
    assert.equal(await readFile(join(dir, "ca.crt"), "utf8"), identity.ca.certPem);
    return parseClientIdentity(certPem);
  };

  describe("direct mode", () => {
    it("mints an operator certificate from the CA key, records it, and writes the identity", async () => {
      const dir = join(tmp, "direct");
      const { code, out, err } = await run([
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--encryption-key-env",
        "NSTANCE_KEY",
        "--tenant",
        "acme",
        "--identity-dir",
        dir,
      ]);
      assert.equal(code, 0, err);
      assert.match(
        out,
        /^Operator registered \(direct mode\)\nClient ID: +opr[0-9a-hjkmnp-tv-z]{26}\n/,
      );
      const client = await expectIdentityFiles(dir);
      assert.equal(client.role, "operator");
      assert.equal(client.tenant, "acme");
      const lifetimeH = (client.notAfter.getTime() - Date.now()) / 3_600_000;
      assert.ok(lifetimeH > 8759 && lifetimeH <= 8760, `default TTL 8760h, got ${lifetimeH}h`);
      const record = await storage.get(`cluster/operator/acme.${client.clientId}.json`);
      assert.ok(record, "registration record written");
      const rec = JSON.parse(record.body.toString("utf8")) as Record<string, string>;
      assert.equal(rec.cert_serial, client.serial);
      assert.equal(rec.tenant, "acme");
      assert.doesNotMatch(record.body.toString("utf8"), /PRIVATE KEY/);

      // The identity works against an Operator API that trusts the cluster CA.
      const list = await run([
        "group",
        "list",
        "--servers",
        `s1=${operatorApi.address}`,
        "--identity-dir",
        dir,
        "--json",
      ]);
      assert.equal(list.code, 0, list.err);
      const doc = JSON.parse(list.out) as { results: Array<{ groups: Array<{ key: string }> }> };
      assert.deepEqual(
        doc.results[0]!.groups.map((g) => g.key),
        ["web"],
        "scoped to tenant acme",
      );
    });

    it("honours --ttl, --operator-id and --json; a reused ID is refused (exit 1)", async () => {
      const dir = join(tmp, "direct-json");
      const args = [
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--encryption-key-env",
        "NSTANCE_KEY",
        "--ttl",
        "2h",
        "--operator-id",
        "ci-bot",
        "--cluster-id",
        "prod-1",
        "--identity-dir",
        dir,
        "--json",
      ];
      const { code, out, err } = await run(args);
      assert.equal(code, 0, err);
      const doc = JSON.parse(out) as Record<string, string>;
      assert.equal(doc.mode, "direct");
      assert.equal(doc.client_id, "ci-bot");
      assert.equal(doc.tenant, "default");
      const loaded = await loadOperatorIdentity(dir);
      assert.equal(loaded.client.clientId, "ci-bot");
      assert.equal(loaded.client.notAfter.toISOString(), doc.expires_at);
      const hours = (loaded.client.notAfter.getTime() - Date.now()) / 3_600_000;
      assert.ok(hours > 1.9 && hours <= 2, `${hours}`);

      const again = await run([...args.filter((a) => a !== "--json"), "--force"]);
      assert.equal(again.code, 1);
      assert.match(again.err, /operator ci-bot of tenant default is already registered/);
    });

    it("refuses to overwrite an existing identity without --force, before touching storage", async () => {
      const dir = join(tmp, "direct");
      const before = (await storage.list("cluster/operator/")).length;
      const { code, err } = await run([
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--encryption-key-env",
        "NSTANCE_KEY",
        "--identity-dir",
        dir,
      ]);
      assert.equal(code, 1);
      assert.match(err, /identity\.key already exists; pass --force to replace the identity/);
      assert.equal((await storage.list("cluster/operator/")).length, before);
      const forced = await run([
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--encryption-key-env",
        "NSTANCE_KEY",
        "--identity-dir",
        dir,
        "--force",
      ]);
      assert.equal(forced.code, 0, forced.err);
    });

    it("a bucket of another cluster (--cluster-id) is refused with exit 2", async () => {
      const { code, err } = await run([
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--encryption-key-env",
        "NSTANCE_KEY",
        "--cluster-id",
        "prod-2",
        "--identity-dir",
        join(tmp, "wrong-cluster"),
      ]);
      assert.equal(code, 2);
      assert.match(err, /holds cluster "prod-1", not "prod-2"/);
    });
  });

  describe("nonce mode", () => {
    const mint = (tenant = "default", ttlMs = 3_600_000, now?: Date) =>
      mintNonceJwt(
        {
          subject: "prod-1",
          kind: "operator",
          clusterId: "prod-1",
          shard: "",
          group: "",
          onDemand: false,
          tenant,
          configHash: "",
        },
        { signingKey: identity.nonceSigningKey, ttlMs, now },
      );

    it("exchanges a nonce from stdin for a certificate, trusting only the CA file", async () => {
      const dir = join(tmp, "nonce");
      const token = await mint("acme");
      const { code, out, err } = await run(
        [
          "cluster",
          "register-operator",
          "--nonce-file",
          "-",
          "--registration-addr",
          registration.address,
          "--ca-file",
          join(tmp, "ca.crt"),
          "--identity-dir",
          dir,
        ],
        `${token}\n`,
      );
      assert.equal(code, 0, err);
      assert.match(out, /^Operator registered \(nonce mode\)\nClient ID: +prod-1\nTenant: +acme\n/);
      const client = await expectIdentityFiles(dir);
      assert.equal(client.tenant, "acme");
      // The key sent to the server is the one written locally.
      const loaded = await loadOperatorIdentity(dir);
      assert.equal(registration.boundKeys.get(token), publicPemOf(loaded.keyPem));
    });

    it("takes the CA from the bucket when no --ca-file is given", async () => {
      const dir = join(tmp, "nonce-bucket-ca");
      const { code, err } = await run([
        "cluster",
        "register-operator",
        "--nonce",
        await mint(),
        "--registration-addr",
        registration.address,
        "--storage",
        "file",
        "--bucket",
        bucket,
        "--identity-dir",
        dir,
      ]);
      assert.equal(code, 0, err);
      await expectIdentityFiles(dir);
    });

    it("a refused nonce: exit 1 with the server's reason, no identity written", async () => {
      const dir = join(tmp, "nonce-expired");
      const expired = await mint("default", 60_000, new Date(Date.now() - 3_600_000));
      const { code, out, err } = await run([
        "cluster",
        "register-operator",
        "--nonce",
        expired,
        "--registration-addr",
        registration.address,
        "--ca-file",
        join(tmp, "ca.crt"),
        "--identity-dir",
        dir,
      ]);
      assert.equal(code, 1);
      assert.equal(out, "");
      assert.equal(err, "error: registration: registration nonce has expired\n");
      await assert.rejects(stat(join(dir, "identity.key")), /ENOENT/);
    });

    it("a server that does not chain to the CA file: exit 3 and a hint", async () => {
      const otherCa = join(tmp, "other-ca.crt");
      const other = await ensureClusterIdentity({
        storage: new FileStorage({ dir: join(tmp, "other-bucket"), fsync: false }),
        clusterId: "other",
        encryptionKey: undefined,
        logger: silentLogger,
      });
      await writeFile(otherCa, other.ca.certPem);
      const { code, err } = await run([
        "cluster",
        "register-operator",
        "--nonce",
        await mint(),
        "--registration-addr",
        registration.address,
        "--ca-file",
        otherCa,
        "--identity-dir",
        join(tmp, "nonce-other"),
      ]);
      assert.equal(code, 3);
      assert.match(
        err,
        /^error: registration \(localhost:\d+\): cannot reach the server: .*certificate.*chain to the cluster CA/,
      );
    });

    it("an unreachable registration address: exit 3", async () => {
      const { code, err } = await run([
        "cluster",
        "register-operator",
        "--nonce",
        "x.y.z",
        "--registration-addr",
        "localhost:1",
        "--ca-file",
        join(tmp, "ca.crt"),
        "--identity-dir",
        join(tmp, "nonce-down"),
      ]);
      assert.equal(code, 3);
      assert.match(
        err,
        /^error: registration \(localhost:1\): cannot reach the server: connect ECONNREFUSED/,
      );
    });
  });
});

/** The PKIX PEM public key of a private key, as the admin sent it to the server. */
function publicPemOf(privateKeyPem: string): string {
  return createPublicKey(privateKeyPem).export({ type: "spki", format: "pem" }).toString();
}
