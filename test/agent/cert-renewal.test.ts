// SPDX-License-Identifier: Apache-2.0
// Agent certificate renewal in process: RenewAgentCertificate on the real Agent service (grpc-js,
// mutual TLS 1.3, SQLite, memory storage), and the agent's CertificateRenewer and AgentChannel
// against it: what is issued and recorded, who is refused, and how the agent takes the new
// certificate into use.
import assert from "node:assert/strict";
import { createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { AgentChannel } from "../../src/agent/agent-channel.js";
import {
  CertificateRenewer,
  type CertificateRenewerOptions,
} from "../../src/agent/certificate-renewer.js";
import { IdentityDir } from "../../src/agent/identity-dir.js";
import {
  getInstance,
  insertPendingInstance,
  listInstanceDecisions,
  markInstanceRegistered,
} from "../../src/db/instances-table.js";
import { parseClientIdentity } from "../../src/pki/client-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { issueClientCertificate } from "../../src/pki/issue-certificate.js";
import type {
  AgentServiceClient,
  RenewAgentCertificateResponse,
} from "../../src/protocol/gen/nstance/v1/agent.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { silentLogger } from "../../src/shared/logger.js";
import {
  type AgentFixture,
  PREFIX,
  startAgentFixture,
  waitFor,
} from "../agent-service/agent-fixture.js";
import { call, recordingLogger, rejectsWithCode } from "../api/api-fixture.js";

/** A registered instance: its identity key and its registration certificate. */
interface Registered {
  id: string;
  publicKeyPem: string;
  privateKeyPem: string;
  certPem: string;
  serial: string;
}

/** The SPKI PEM of a key, or of a PEM private or public key. */
const spki = (k: KeyObject | string): string =>
  (typeof k === "string" ? createPublicKey(k) : k)
    .export({ type: "spki", format: "pem" })
    .toString();

describe("agent certificate renewal", () => {
  let fx: AgentFixture;
  let root: string;
  let seq = 0;
  before(async () => {
    fx = await startAgentFixture();
    root = await mkdtemp(join(tmpdir(), "nstance-cert-renewal-"));
  });
  after(async () => {
    await fx.close();
    await rm(root, { recursive: true, force: true });
  });

  /** Registers an instance as RegisterAgent would: row, key, serial, and its storage record. */
  async function register(): Promise<Registered> {
    const id = `webrenew${String(++seq).padStart(5, "0")}`;
    const keys = generateEd25519KeyPair();
    const cert = await issueClientCertificate({
      ca: fx.identity.ca,
      publicKeyPem: keys.publicKeyPem,
      clientId: id,
      tenant: "default",
      role: "agent",
    });
    const now = Date.now();
    insertPendingInstance(fx.db, {
      id,
      tenant: "default",
      groupKey: "web",
      nonce: `nonce-${id}`,
      infraConfigHash: "sha256:test",
      createdAt: now,
    });
    markInstanceRegistered(fx.db, {
      id,
      registeredAt: now,
      instancePub: keys.publicKeyPem,
      certSerial: cert.serial,
    });
    await fx.storage.put(
      instanceRecordKey(PREFIX, "default", id),
      JSON.stringify({
        instance_id: id,
        tenant: "default",
        group: "web",
        cert_serial: cert.serial,
      }),
    );
    return {
      id,
      publicKeyPem: keys.publicKeyPem,
      privateKeyPem: keys.privateKeyPem,
      certPem: cert.certificatePem,
      serial: cert.serial,
    };
  }

  function renew(client: AgentServiceClient): Promise<RenewAgentCertificateResponse> {
    return call<RenewAgentCertificateResponse>((md, opts, cb) =>
      client.renewAgentCertificate({}, md, opts, cb),
    );
  }

  const clientFor = (r: Registered, certPem = r.certPem) =>
    fx.client({ certPem, keyPem: r.privateKeyPem });

  async function record(id: string): Promise<Record<string, unknown>> {
    const obj = await fx.storage.get(instanceRecordKey(PREFIX, "default", id));
    assert.ok(obj, `record of ${id}`);
    return JSON.parse(obj.body.toString("utf8")) as Record<string, unknown>;
  }

  describe("RenewAgentCertificate", () => {
    it("issues a certificate for the registered key with a new serial, and records it", async () => {
      const r = await register();
      const before = Date.now();
      const res = await renew(clientFor(r));
      const pem = res.clientCertificatePem.toString("utf8");
      const cert = new X509Certificate(pem);
      const ca = new X509Certificate(fx.identity.ca.certPem);
      assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), "signed by the cluster CA");
      assert.equal(
        spki(cert.publicKey.export({ type: "spki", format: "pem" }).toString()),
        spki(r.publicKeyPem),
      );
      const who = parseClientIdentity(pem);
      assert.deepEqual([who.clientId, who.tenant, who.role], [r.id, "default", "agent"]);
      assert.notEqual(who.serial, r.serial);
      assert.equal(res.expiresAt?.getTime(), Date.parse(cert.validTo));
      // The default agent TTL is 24 h (no certificates.agent in the test config).
      const ttlMs = Date.parse(cert.validTo) - before;
      assert.ok(ttlMs > 23.9 * 3_600_000 && ttlMs <= 24 * 3_600_000 + 60_000, `ttl ${ttlMs} ms`);
      assert.match(cert.subject, new RegExp(`CN=${r.id}`));

      assert.equal(getInstance(fx.db, r.id)?.certSerial, who.serial, "SQLite has the new serial");
      const rec = await record(r.id);
      assert.equal(rec.cert_serial, who.serial);
      assert.equal(rec.previous_cert_serial, r.serial);
      assert.equal(rec.cert_expires_at, new Date(cert.validTo).toISOString());
      assert.equal(rec.cert_pem, pem);
      assert.ok(Date.parse(String(rec.cert_renewed_at)) >= before - 1_000);
      assert.equal(rec.group, "web", "the rest of the record is kept");

      const decision = listInstanceDecisions(fx.db, r.id).find(
        (d) => d.decision === "certificate_renewed",
      );
      assert.deepEqual(decision?.evidence, {
        cert_serial: who.serial,
        cert_expires_at: new Date(cert.validTo).toISOString(),
        previous_serial: r.serial,
      });
      const certlog = (await fx.storage.list(`${PREFIX}certlog/`)).filter((o) =>
        o.key.endsWith(`.${r.id}.json`),
      );
      assert.equal(certlog.length, 1);
      const entry = JSON.parse((await fx.storage.get(certlog[0]!.key))!.body.toString("utf8")) as {
        certificates: Array<Record<string, string>>;
      };
      assert.deepEqual(entry.certificates, [
        {
          certificate_name: "agent",
          filename: "identity.crt",
          serial_number: who.serial,
          expires_at: new Date(cert.validTo).toISOString(),
        },
      ]);
      const line = fx.logger.lines.find(
        (l) => l.msg === "Agent certificate renewed" && l.attrs?.instance_id === r.id,
      );
      assert.equal(line?.attrs?.serial, who.serial);
      assert.doesNotMatch(JSON.stringify(line), /BEGIN/, "no key or certificate in the log");
    });

    it("refuses a superseded certificate, and re-sends the current one to the one it replaced", async () => {
      const r = await register();
      const second = (await renew(clientFor(r))).clientCertificatePem.toString("utf8");
      const third = (await renew(clientFor(r, second))).clientCertificatePem.toString("utf8");
      const thirdSerial = parseClientIdentity(third).serial;
      const renewals = () =>
        listInstanceDecisions(fx.db, r.id).filter((d) => d.decision === "certificate_renewed")
          .length;
      assert.equal(renewals(), 2);

      const err = await rejectsWithCode(renew(clientFor(r)), status.PERMISSION_DENIED);
      assert.match(err.details, /has been superseded/);

      // The holder of `second` lost the answer that carried `third`: it gets `third` again.
      const again = await renew(clientFor(r, second));
      assert.equal(again.clientCertificatePem.toString("utf8"), third);
      assert.equal(renewals(), 2, "nothing new was issued");
      assert.equal(getInstance(fx.db, r.id)?.certSerial, thirdSerial);

      // The current certificate renews as usual.
      const fourth = (await renew(clientFor(r, third))).clientCertificatePem.toString("utf8");
      assert.notEqual(parseClientIdentity(fourth).serial, thirdSerial);
      assert.equal(renewals(), 3);
      await rejectsWithCode(renew(clientFor(r, second)), status.PERMISSION_DENIED);
    });

    it("renews when the cache lags the storage record by one renewal", async () => {
      const r = await register();
      const second = (await renew(clientFor(r))).clientCertificatePem.toString("utf8");
      // As after a crash between the record write and the SQLite update.
      fx.db.prepare("UPDATE instances SET cert_serial = ? WHERE id = ?").run(r.serial, r.id);
      const third = (await renew(clientFor(r, second))).clientCertificatePem.toString("utf8");
      const serial = parseClientIdentity(third).serial;
      assert.equal(getInstance(fx.db, r.id)?.certSerial, serial);
      const rec = await record(r.id);
      assert.equal(rec.cert_serial, serial);
      assert.equal(rec.previous_cert_serial, parseClientIdentity(second).serial);
      // Had that answer been lost too, `second` gets `third` again.
      const again = await renew(clientFor(r, second));
      assert.equal(again.clientCertificatePem.toString("utf8"), third);
    });

    it("refuses an operator certificate by its role", async () => {
      const r = await register();
      const op = await issueClientCertificate({
        ca: fx.identity.ca,
        publicKeyPem: r.publicKeyPem,
        clientId: r.id,
        tenant: "default",
        role: "operator",
      });
      const err = await rejectsWithCode(
        renew(clientFor(r, op.certificatePem)),
        status.PERMISSION_DENIED,
      );
      assert.match(err.details, /requires role "agent"/);
      assert.equal(getInstance(fx.db, r.id)?.certSerial, r.serial, "nothing changed");
    });

    it("refuses a deleted, a deleting and an unknown instance with NOT_FOUND", async () => {
      const deleted = await register();
      fx.db.prepare("UPDATE instances SET deleted_at = ? WHERE id = ?").run(Date.now(), deleted.id);
      assert.match(
        (await rejectsWithCode(renew(clientFor(deleted)), status.NOT_FOUND)).details,
        /not known to this shard/,
      );
      const deleting = await register();
      fx.db
        .prepare("UPDATE instances SET provider_state = ? WHERE id = ?")
        .run(JSON.stringify({ status: "deleting" }), deleting.id);
      assert.match(
        (await rejectsWithCode(renew(clientFor(deleting)), status.NOT_FOUND)).details,
        /being deleted/,
      );
      const unknown = await fx.agentCert("webrenewunknown");
      await rejectsWithCode(renew(fx.client(unknown)), status.NOT_FOUND);
      assert.equal(getInstance(fx.db, deleted.id)?.certSerial, deleted.serial);
      assert.equal(getInstance(fx.db, deleting.id)?.certSerial, deleting.serial);
    });

    it("refuses on a standby with FAILED_PRECONDITION", async () => {
      const r = await register();
      fx.leadership.leading = false;
      try {
        await rejectsWithCode(renew(clientFor(r)), status.FAILED_PRECONDITION);
      } finally {
        fx.leadership.leading = true;
      }
      assert.equal(getInstance(fx.db, r.id)?.certSerial, r.serial);
    });
  });

  describe("CertificateRenewer", () => {
    const agentAddr = () => `localhost:${fx.servers.addresses.agent.split(":").at(-1)}`;

    /**
     * The agent's side of `r`: identity.crt, a channel, and a renewer that renews each certificate
     * 100 ms after it obtained it (renewBeforeMs is nearly the whole lifetime: always due).
     */
    async function agentSide(r: Registered, o: Partial<CertificateRenewerOptions> = {}) {
      const dir = await mkdtemp(join(root, "agent-"));
      const identity = new IdentityDir({ dir, logger: silentLogger });
      await identity.ensure();
      await identity.writeCertificate(r.certPem);
      const channel = new AgentChannel({
        addrs: [agentAddr()],
        caCertPem: fx.identity.ca.certPem,
        certificatePem: r.certPem,
        privateKeyPem: r.privateKeyPem,
        logger: silentLogger,
      });
      const cert = new X509Certificate(r.certPem);
      const renewer = new CertificateRenewer({
        channel,
        identity,
        caCertPem: fx.identity.ca.certPem,
        publicKeyPem: r.publicKeyPem,
        certificatePem: r.certPem,
        renewBeforeMs: Date.parse(cert.validTo) - Date.parse(cert.validFrom) - 1_000,
        minIntervalMs: 100,
        logger: silentLogger,
        ...o,
      });
      const stop = async () => {
        await renewer.stop();
        channel.close();
      };
      return { dir, renewer, stop };
    }

    it("renews, writes identity.crt (0600), and new connections present the new certificate", async () => {
      const r = await register();
      const renewed: string[] = [];
      const { dir, renewer, stop } = await agentSide(r, {
        onRenewed: (c) => renewed.push(c.serial),
      });
      renewer.start();
      try {
        await waitFor("two renewals", () => renewed.length >= 2);
      } finally {
        await stop();
        await renewer.stop();
      }
      assert.equal(renewer.state, "stopped");
      const decisions = listInstanceDecisions(fx.db, r.id).filter(
        (d) => d.decision === "certificate_renewed",
      );
      assert.ok(decisions.length >= 2);
      // The second renewal was asked for with the first renewed certificate: the channel's new
      // connection presented it (the server renews only from the current serial).
      assert.equal(decisions[0]!.evidence.previous_serial, r.serial);
      assert.equal(decisions[1]!.evidence.previous_serial, renewed[0]);
      const onDisk = await readFile(join(dir, "identity.crt"), "utf8");
      assert.equal(onDisk, renewer.certificatePem);
      const serial = parseClientIdentity(onDisk).serial;
      assert.equal(serial, renewed.at(-1));
      assert.equal(getInstance(fx.db, r.id)?.certSerial, serial);
      assert.equal(spki(new X509Certificate(onDisk).publicKey), spki(r.publicKeyPem));
      assert.equal((await stat(join(dir, "identity.crt"))).mode & 0o777, 0o600);
    });

    it("keeps the certificate and retries while the server refuses, then renews", async () => {
      const r = await register();
      const logger = recordingLogger();
      const warnings = () =>
        logger.lines.filter((l) => l.msg === "Certificate renewal failed; retrying");
      const { dir, renewer, stop } = await agentSide(r, {
        retry: { initialMs: 50, maxMs: 100 },
        logger,
      });
      fx.leadership.leading = false;
      renewer.start();
      try {
        await waitFor("two refused attempts", () => warnings().length >= 2);
        assert.equal(await readFile(join(dir, "identity.crt"), "utf8"), r.certPem, "kept");
        assert.equal(renewer.certificatePem, r.certPem);
        const warn = warnings()[0]!;
        assert.equal(warn.msg, "Certificate renewal failed; retrying");
        assert.match(String(warn.attrs?.err), /not the shard leader/);
        assert.equal(warn.attrs?.attempt, 1);
        assert.equal(warnings()[1]!.attrs?.attempt, 2);
        fx.leadership.leading = true;
        await waitFor("the renewal", () => renewer.renewals >= 1);
        assert.doesNotMatch(JSON.stringify(logger.lines), /BEGIN/, "no key or certificate logged");
        assert.ok(logger.lines.some((l) => l.msg === "Certificate renewed"));
      } finally {
        fx.leadership.leading = true;
        await stop();
      }
      assert.notEqual(await readFile(join(dir, "identity.crt"), "utf8"), r.certPem);
    });

    it("refuses a certificate that does not certify its identity key, and keeps the old one", async () => {
      const r = await register();
      const logger = recordingLogger();
      const errs = () =>
        logger.lines
          .filter((l) => l.msg === "Certificate renewal failed; retrying")
          .map((l) => String(l.attrs?.err));
      const { dir, renewer, stop } = await agentSide(r, {
        // As if the server had certified another key than identity.key.
        publicKeyPem: generateEd25519KeyPair().publicKeyPem,
        retry: { initialMs: 10_000, maxMs: 10_000 },
        logger,
      });
      renewer.start();
      try {
        await waitFor("the refused certificate", () => errs().length >= 1);
      } finally {
        await stop();
      }
      assert.match(errs()[0]!, /returned an unusable certificate \(does not match identity\.key\)/);
      assert.equal(renewer.renewals, 0);
      assert.equal(await readFile(join(dir, "identity.crt"), "utf8"), r.certPem);
    });
  });
});
