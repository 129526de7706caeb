// SPDX-License-Identifier: Apache-2.0
/**
 * The Agent service over real grpc-js listeners with mTLS agent certificates: identity checks,
 * report storage, key requests → public keys → CA-signed certificates, delivery of every file kind
 * with exact contents, drift repair after a vars change, partial pushes, newest-stream rules,
 * spot notices and the not-leader rule.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { call, rejectsWithCode } from "../api/api-fixture.js";
import {
  type AgentFixture,
  openHealthStream,
  openServerStreams,
  patches,
  report,
  startAgentFixture,
  waitFor,
} from "./agent-fixture.js";

const present = (at = new Date()) => ({ status: { $case: "lastModified" as const, value: at } });

describe("agent service", () => {
  let fx: AgentFixture;
  before(async () => {
    fx = await startAgentFixture();
  });
  after(async () => {
    await fx.close();
  });

  it("refuses a report whose instance_id is not the certificate's CN with PERMISSION_DENIED", async () => {
    fx.addInstance("webmismatch01");
    fx.addInstance("webmismatch02");
    const client = fx.client(await fx.agentCert("webmismatch01"));
    const s = openHealthStream(client);
    s.call.write(report("webmismatch02"));
    const err = await s.done;
    assert.equal(err?.code, status.PERMISSION_DENIED);
    assert.match(err?.details ?? "", /does not match the client certificate/);
    const row = fx.db
      .prepare("SELECT health_at FROM instances WHERE id = ?")
      .get("webmismatch02") as {
      health_at: number | null;
    };
    assert.equal(row.health_at, null, "nothing stored for the other instance");
  });

  it("refuses an instance this shard does not know with NOT_FOUND", async () => {
    const client = fx.client(await fx.agentCert("webunknown001"));
    const s = openHealthStream(client);
    const err = await s.done;
    assert.equal(err?.code, status.NOT_FOUND);
  });

  it("stores the latest report on the instance row and in the history", async () => {
    fx.addInstance("webstore00001");
    const client = fx.client(await fx.agentCert("webstore00001"));
    const s = openHealthStream(client);
    s.call.write(
      report("webstore00001", {
        count: 7,
        configHash: "sha256:abc",
        files: {
          "a.txt": present(new Date("2024-01-01T00:00:00Z")),
          "b.key": { status: { $case: "error", value: "permission denied" } },
        },
      }),
    );
    const row = await waitFor("the stored report", () => {
      const r = fx.db
        .prepare("SELECT health_at, health, config_hash FROM instances WHERE id = ?")
        .get("webstore00001") as {
        health_at: number | null;
        health: string | null;
        config_hash: string | null;
      };
      return r.health_at !== null ? r : undefined;
    });
    assert.equal(row.config_hash, "sha256:abc");
    const health = JSON.parse(row.health!) as Record<string, unknown>;
    assert.equal(health.count, 7);
    assert.equal(health.instance_id, "webstore00001");
    assert.deepEqual(health.files, {
      "a.txt": "2024-01-01T00:00:00.000Z",
      "b.key": "error: permission denied",
    });
    assert.equal((health.one_minute as { cpu_usage: number }).cpu_usage, 1.5);
    const history = fx.db
      .prepare("SELECT COUNT(*) AS n FROM health_reports WHERE instance_id = ?")
      .get("webstore00001") as { n: number };
    assert.equal(history.n, 1);
    const conn = fx.agents.connections.get("webstore00001");
    assert.equal(conn?.reports, 1);
    assert.ok(conn?.lastReportAt !== undefined);
    s.call.end();
    assert.equal(await s.done, null, "a half-close is answered OK");
  });

  it("requests the template's keys, and delivers a CA-signed certificate for the submitted key", async () => {
    const id = "webkeys000001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const { files, keys } = openServerStreams(client);
    const req = await waitFor("a key request", () => keys.messages[0]);
    assert.deepEqual(req.keyNames, ["web"]);

    // Until the key arrives, the first patch carries everything but the certificate.
    const first = await waitFor("the first patch", () => patches(files.messages)[0]);
    assert.ok(!first.files.has("web.crt"));
    assert.ok(first.files.has("ca.crt"));

    const keyPair = generateEd25519KeyPair();
    await call((md, opts, cb) =>
      client.submitPublicKeys(
        {
          instanceId: id,
          keys: [{ filename: "web.pub", publicKeyPem: Buffer.from(keyPair.publicKeyPem) }],
        },
        md,
        opts,
        cb,
      ),
    );
    const stored = fx.db
      .prepare("SELECT public_key_pem FROM public_keys WHERE instance_id = ?")
      .get(id) as {
      public_key_pem: string;
    };
    assert.equal(stored.public_key_pem, keyPair.publicKeyPem, "stored before the call answered");

    const withCert = await waitFor("the certificate patch", () =>
      patches(files.messages).find((p) => p.files.has("web.crt")),
    );
    const group = fx.configStore.group("default", "web")!;
    assert.equal(withCert.hash, group.runtimeHash);
    const cert = new X509Certificate(withCert.files.get("web.crt")!);
    const ca = new X509Certificate(fx.identity.ca.certPem);
    assert.ok(cert.verify(ca.publicKey), "signed by the cluster CA");
    assert.ok(cert.checkIssued(ca));
    assert.equal(cert.subject, `CN=${id}.test.internal`);
    assert.equal(
      cert.subjectAltName,
      `DNS:${id}.test.internal, DNS:localhost, IP Address:10.0.0.5`,
    );
    assert.ok(
      cert.publicKey.export({ type: "spki", format: "pem" }).toString() === keyPair.publicKeyPem,
    );
    assert.deepEqual(cert.keyUsage, ["1.3.6.1.5.5.7.3.1"], "EKU serverAuth for a server template");
    const ttlH = (Date.parse(cert.validTo) - Date.now()) / 3_600_000;
    assert.ok(ttlH > 23 && ttlH <= 24, `TTL from the template (24 h), got ${ttlH}`);

    const issued = fx.db
      .prepare("SELECT serial, certificate_name FROM issued_certificates WHERE instance_id = ?")
      .get(id) as {
      serial: string;
      certificate_name: string;
    };
    assert.equal(issued.certificate_name, "web-server");
    assert.equal(issued.serial, cert.serialNumber.toLowerCase());
    const log = await fx.storage.list(`shard/local/certlog/default.`);
    const entry = log.find((o) => o.key.endsWith(`.${id}.json`));
    assert.ok(entry, "a certlog entry was written");
    const body = JSON.parse((await fx.storage.get(entry.key))!.body.toString()) as {
      certificates: Array<{ serial_number: string }>;
      batch_size: number;
    };
    assert.equal(body.batch_size, 1);
    assert.equal(body.certificates[0]?.serial_number, issued.serial);
    files.stream.cancel();
    keys.stream.cancel();
  });

  it("accepts a base64 DER key (Go agents) and refuses a non-Ed25519 key whole", async () => {
    const id = "webkeyfmt0001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const der = generateEd25519KeyPair().publicKeyPem.replace(/-----[A-Z ]+-----|\n/g, "");
    await call((md, opts, cb) =>
      client.submitPublicKeys(
        { instanceId: id, keys: [{ filename: "web", publicKeyPem: Buffer.from(der) }] },
        md,
        opts,
        cb,
      ),
    );
    const row = fx.db.prepare("SELECT filename FROM public_keys WHERE instance_id = ?").all(id);
    assert.deepEqual(row, [{ filename: "web.pub" }], "bare key names are stored as <name>.pub");

    const { generateKeyPairSync } = await import("node:crypto");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    const err = await rejectsWithCode(
      call((md, opts, cb) =>
        client.submitPublicKeys(
          {
            instanceId: id,
            keys: [
              {
                filename: "other.pub",
                publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem),
              },
              { filename: "rsa.pub", publicKeyPem: Buffer.from(rsa) },
            ],
          },
          md,
          opts,
          cb,
        ),
      ),
      status.INVALID_ARGUMENT,
    );
    assert.match(err.details, /rsa\.pub: public key must be Ed25519/);
    const names = fx.db
      .prepare("SELECT filename FROM public_keys WHERE instance_id = ? ORDER BY filename")
      .all(id);
    assert.deepEqual(names, [{ filename: "web.pub" }], "a refused submission stores nothing");

    await rejectsWithCode(
      call((md, opts, cb) =>
        client.submitPublicKeys({ instanceId: "webother00001", keys: [] }, md, opts, cb),
      ),
      status.PERMISSION_DENIED,
    );
  });

  it("delivers secret, storage, env, json and string files with exact contents", async () => {
    const id = "webfiles00001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const { files, keys } = openServerStreams(client);
    const p = await waitFor("the first patch", () => patches(files.messages)[0]);
    assert.deepEqual([...p.files.keys()].sort(), [
      "app.conf",
      "ca.crt",
      "instance.json",
      "motd.txt",
      "token.txt",
      "web.env",
    ]);
    assert.equal(p.files.get("token.txt"), "s3cr3t-token-value");
    assert.equal(p.files.get("app.conf"), "listen = 8080\n");
    assert.equal(p.files.get("web.env"), "ENVIRONMENT=development\nPORT=8080\n");
    assert.equal(
      p.files.get("instance.json"),
      `${JSON.stringify({ id, cluster: "local", port: 8080, tls: true }, null, 2)}\n`,
    );
    assert.equal(p.files.get("motd.txt"), `Hello ${id}.test.internal (10.0.0.5)\n`);
    assert.equal(p.files.get("ca.crt"), fx.identity.ca.certPem);
    assert.equal(p.hash, fx.configStore.group("default", "web")!.runtimeHash);
    assert.ok(
      !fx.logger.lines.some((l) => JSON.stringify(l).includes("s3cr3t-token-value")),
      "the secret value is never logged",
    );
    files.stream.cancel();
    keys.stream.cancel();
  });

  it("pushes only missing or errored files while the hash matches, and nothing when all are present", async () => {
    const id = "webpartial001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const { files, keys } = openServerStreams(client);
    await waitFor("the first patch", () => patches(files.messages)[0]);
    const hash = fx.configStore.group("default", "web")!.runtimeHash;
    const s = openHealthStream(client);
    const all = {
      "app.conf": present(),
      "ca.crt": present(),
      "instance.json": present(),
      "web.env": present(),
    };
    s.call.write(
      report(id, {
        configHash: hash,
        files: { ...all, "motd.txt": { status: { $case: "error", value: "rejected" } } },
      }),
    );
    const second = await waitFor("the partial patch", () => patches(files.messages)[1]);
    assert.deepEqual(
      [...second.files.keys()],
      ["motd.txt", "token.txt"],
      "errored and unreported files only",
    );
    assert.equal(second.hash, hash);
    const count = files.messages.length;
    s.call.write(
      report(id, {
        count: 2,
        configHash: hash,
        files: { ...all, "motd.txt": present(), "token.txt": present() },
      }),
    );
    await waitFor("the second report stored", () => fx.agents.connections.get(id)?.reports === 2);
    await fx.agents.deliveryIdle(id);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(files.messages.length, count, "nothing is pushed when every file is present");
    s.call.end();
    await s.done;
    files.stream.cancel();
    keys.stream.cancel();
  });

  it("pushes the whole set with the new runtime hash after a vars change", async () => {
    const id = "webdrift0001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const { files, keys } = openServerStreams(client);
    const first = await waitFor("the first patch", () => patches(files.messages)[0]);
    const oldHash = first.hash;
    await fx.configStore.upsertGroup("default", "web", { vars: { listen_port: "9090" } });
    const newHash = fx.configStore.group("default", "web")!.runtimeHash;
    assert.notEqual(newHash, oldHash);
    const s = openHealthStream(client);
    const everything = Object.fromEntries([...first.files.keys()].map((n) => [n, present()]));
    s.call.write(report(id, { configHash: oldHash, files: everything }));
    const second = await waitFor("the drift patch", () => patches(files.messages)[1]);
    assert.equal(second.hash, newHash);
    assert.deepEqual(
      [...second.files.keys()].sort(),
      [...first.files.keys()].sort(),
      "the whole set",
    );
    assert.equal(second.files.get("web.env"), "ENVIRONMENT=development\nPORT=9090\n");
    s.call.end();
    await s.done;
    files.stream.cancel();
    keys.stream.cancel();
    await fx.configStore.upsertGroup("default", "web", { vars: { listen_port: "8080" } });
  });

  it("serves only the newest ReceiveFiles stream of an instance", async () => {
    const id = "webnewest0001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const older = openServerStreams(client);
    await waitFor("the older stream's patch", () => patches(older.files.messages)[0]);
    const newer = openServerStreams(client);
    await waitFor("the older stream ended", () => older.files.error);
    assert.equal(older.files.error?.code, status.ABORTED);
    assert.equal(older.keys.error?.code, status.ABORTED);
    await waitFor("the newer stream's patch", () => patches(newer.files.messages)[0]);
    newer.files.stream.cancel();
    newer.keys.stream.cancel();
  });

  it("hands a spot termination notice on once per distinct notice", async () => {
    const id = "webspot000001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const s = openHealthStream(client);
    const deadline = new Date(Date.now() + 120_000);
    for (let count = 1; count <= 3; count++) {
      s.call.write(report(id, { count, terminationNotice: { action: "terminate", deadline } }));
    }
    await waitFor("three reports", () => fx.agents.connections.get(id)?.reports === 3);
    await waitFor("the notice", () => fx.notices.find((n) => n.instanceId === id));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(fx.notices.filter((n) => n.instanceId === id).length, 1);
    const decision = fx.db
      .prepare("SELECT decision, reason FROM decisions WHERE instance_id = ?")
      .get(id) as { decision: string; reason: string };
    assert.deepEqual({ ...decision }, { decision: "termination_notice", reason: "terminate" });
    s.call.end();
    await s.done;
  });

  it("refuses every RPC with FAILED_PRECONDITION on a server that is not the shard leader", async () => {
    const id = "webstandby001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    fx.leadership.leading = false;
    try {
      const s = openHealthStream(client);
      s.call.write(report(id));
      assert.equal((await s.done)?.code, status.FAILED_PRECONDITION);
      const { files } = openServerStreams(client);
      await waitFor("the files stream to end", () => files.error);
      assert.equal(files.error?.code, status.FAILED_PRECONDITION);
    } finally {
      fx.leadership.leading = true;
    }
  });

  it("a report with an out-of-range field ends only that stream, with INVALID_ARGUMENT", async () => {
    const id = "webinvalid001";
    fx.addInstance(id);
    const client = fx.client(await fx.agentCert(id));
    const s = openHealthStream(client);
    const w = {
      cpuUsage: Number.NaN,
      memoryUsage: 1,
      networkBytesSent: 1,
      networkBytesReceived: 1,
      diskUsed: 1,
    };
    s.call.write(report(id, { oneMinute: w }));
    const err = await s.done;
    assert.equal(err?.code, status.INVALID_ARGUMENT);
    assert.match(err?.details ?? "", /one_minute\.cpuUsage/);
    await waitFor("the lost event", () => fx.disconnects.find((d) => d.instanceId === id));
    assert.equal(fx.disconnects.find((d) => d.instanceId === id)?.kind, "lost");
  });
});
