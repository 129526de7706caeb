// SPDX-License-Identifier: Apache-2.0
// Security checks against a real fleet (a nstance-server process and real agents of the `local`
// provider): every TLS listener (election HTTPS, registration, operator and agent gRPC) completes
// a TLS 1.3 handshake and refuses TLS 1.2 and plaintext HTTP/2 and HTTP/1.1; the health endpoint
// is plain HTTP by design (seed 000). After agents registered, generated keys and received a
// secret file, no private key, nonce, encryption key or secret value appears in the server's or
// the agents' logs, or in clear in the storage bucket.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureClusterIdentity } from "../../src/pki/cluster-identity.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FileStorage } from "../../src/storage/file-storage.js";
import { FLEET_CLUSTER, FLEET_WAIT_MS, LocalFleet } from "../e2e/local-fleet.js";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { formatFindings, type Secret, scanForSecrets } from "../support/secret-scan.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { probePlaintextHttp1, probePlaintextHttp2, probeTls, type TlsProbe } from "./tls-probes.js";

const GROUP = "web";
const SIZE = 2;
const SECRET_NAME = "api-token";

describe("security of a running fleet", { concurrency: false }, () => {
  let fleet: LocalFleet;
  /** Text that must appear nowhere but in the secret store (encrypted) and the agents' recv dirs. */
  const secretValue = Buffer.concat([
    Buffer.from(`sv-${randomBytes(8).toString("hex")}\n`),
    randomBytes(24),
  ]);
  const adminOutput: string[] = [];
  let operator: { caPem: string; certPem: string; keyPem: string };

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-security-"));
    fleet = await LocalFleet.start({
      dir,
      edits: [
        [["templates", GROUP, "files", SECRET_NAME], { kind: "secret", source: SECRET_NAME }],
        [["groups", "default", GROUP, "size"], 0],
      ],
      agentEnv: { NSTANCE_METRICS_INTERVAL: "2s" },
    });
    const file = join(dir, "secret.bin");
    await writeFile(file, secretValue, { mode: 0o600 });
    for (const argv of [
      ["secret", "put", SECRET_NAME, "--value-file", file],
      ["group", "scale", GROUP, String(SIZE)],
    ]) {
      const r = await fleet.shardAdmin(...argv);
      adminOutput.push(r.out, r.err);
      assert.equal(r.code, 0, r.err);
    }
    await waitFor(
      `${SIZE} agents registered, holding the secret file`,
      () => {
        const live = fleet.instances().filter((i) => i.groupKey === GROUP);
        return (
          live.length === SIZE &&
          live.every((i) => {
            const status = (i.health?.files as Record<string, string> | undefined)?.[SECRET_NAME];
            return (
              i.registeredAt !== null && typeof status === "string" && !status.startsWith("error")
            );
          })
        );
      },
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    const id = (name: string) => readFile(join(fleet.identityDir, name), "utf8");
    operator = {
      caPem: await id("ca.crt"),
      certPem: await id("identity.crt"),
      keyPem: await id("identity.key"),
    };
  });
  after(async () => {
    await fleet?.stop();
  });

  it("every TLS listener completes TLS 1.3 and refuses TLS 1.2, plaintext HTTP/2 and HTTP/1.1", async (t) => {
    const { election, registration, operator: op, agent } = fleet.server.ports;
    for (const [name, port] of Object.entries({ election, registration, operator: op, agent })) {
      const tls13 = await probeTls({ port, version: "TLSv1.3", ...operator });
      assert.deepEqual(
        tls13,
        { handshake: true, protocol: "TLSv1.3", authorized: true },
        `${name}: a TLS 1.3 client with a cluster certificate is served`,
      );
      const tls12: TlsProbe = await probeTls({ port, version: "TLSv1.2", ...operator });
      assert.equal(tls12.handshake, false, `${name}: TLS 1.2 handshake completed`);
      const h2c = await probePlaintextHttp2(port);
      const h1 = await probePlaintextHttp1(port);
      t.diagnostic(
        `${name}: TLS 1.2 → ${JSON.stringify(tls12)}; h2c → ${JSON.stringify(h2c)}; HTTP/1.1 → ${JSON.stringify(h1)}`,
      );
      assert.equal(
        h2c.answered,
        false,
        `${name}: answered plaintext HTTP/2 ${JSON.stringify(h2c)}`,
      );
      assert.equal(
        h1.answered,
        false,
        `${name}: answered plaintext HTTP/1.1 ${JSON.stringify(h1)}`,
      );
    }
  });

  it("the health endpoint is plain HTTP by design (seed 000) and speaks no TLS", async () => {
    const port = fleet.server.ports.health;
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(typeof body, "object");
    const tls = await probeTls({ port, version: "TLSv1.3", ...operator });
    assert.equal(tls.handshake, false);
  });

  it("no private key, nonce, encryption key or secret value in logs or in clear in the bucket", async (t) => {
    const identity = await ensureClusterIdentity({
      storage: new FileStorage({ dir: fleet.bucket, fsync: false }),
      clusterId: FLEET_CLUSTER,
      encryptionKey: Buffer.from(TEST_ENCRYPTION_KEY, "base64"),
      logger: silentLogger,
    });
    const pem = (k: { export(o: object): string | Buffer }) =>
      k.export({ type: "pkcs8", format: "pem" }).toString();
    const ids = fleet.instances().map((i) => i.id);
    const secrets: Secret[] = [
      { name: "encryption key (base64)", value: TEST_ENCRYPTION_KEY },
      { name: "encryption key (bytes)", value: Buffer.from(TEST_ENCRYPTION_KEY, "base64") },
      { name: "secret value", value: secretValue },
      { name: "CA private key", value: pem(identity.ca.privateKey) },
      { name: "nonce signing key", value: pem(identity.nonceSigningKey) },
      { name: "operator private key", value: operator.keyPem },
    ];
    const nonces = fleet.db.prepare("SELECT id, nonce FROM instances").all() as Array<{
      id: string;
      nonce: string;
    }>;
    assert.ok(nonces.length >= SIZE);
    for (const n of nonces) secrets.push({ name: `nonce of ${n.id}`, value: n.nonce });
    for (const id of ids) {
      const dir = fleet.instanceDir(id);
      secrets.push({
        name: `identity key of ${id}`,
        value: await readFile(join(dir, "identity", "identity.key")),
      });
      for (const f of await readdir(join(dir, "keys"))) {
        if (f.endsWith(".key")) {
          secrets.push({ name: `key ${f} of ${id}`, value: await readFile(join(dir, "keys", f)) });
        }
      }
    }

    // The list is real: each agent's own directory holds its keys and the delivered secret.
    const own = await scanForSecrets(fleet.instanceDir(ids[0]!), secrets, { patterns: false });
    const ownNames = new Set(own.map((f) => f.secret));
    for (const name of ["secret value", `identity key of ${ids[0]}`, `key web.key of ${ids[0]}`]) {
      assert.ok(ownNames.has(name), `positive control: ${name} found where it belongs`);
    }

    const server = fleet.server.history.flatMap((p) => [
      { text: p.logs.map((l) => JSON.stringify(l)).join("\n"), name: `server ${p.child.pid} log` },
      { text: p.stderr.join(""), name: `server ${p.child.pid} stderr` },
    ]);
    const findings = await scanForSecrets(
      [
        ...server,
        { text: adminOutput.join("\n"), name: "admin output" },
        ...ids.map((id) => ({
          dir: fleet.instanceDir(id),
          label: `agent ${id}`,
          include: (p: string) => p.endsWith(".log"),
        })),
        { dir: fleet.bucket, label: "bucket" },
      ],
      secrets,
    );
    t.diagnostic(
      `scanned for ${secrets.length} secrets and the key/JWT patterns: ${findings.length} findings`,
    );
    assert.equal(findings.length, 0, `secrets in the clear:\n${formatFindings(findings)}`);
  });
});
