// SPDX-License-Identifier: Apache-2.0
// ensureRegistered with a scripted RegisterAgent call: server order, standbys, rejected and
// expired nonces, transient retries, certificate checks, interrupted registrations.
import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { checkAgentCertificate } from "../../src/agent/agent-certificate.js";
import { IdentityDir } from "../../src/agent/identity-dir.js";
import { KeyStore } from "../../src/agent/key-store.js";
import {
  classifyRegistrationStatus,
  ensureRegistered,
  type RegisterAgentCall,
} from "../../src/agent/registration.js";
import { issueClientCertificate } from "../../src/pki/issue-certificate.js";
import { mintNonceJwt } from "../../src/pki/nonce-jwt.js";
import { createTestPki, type TestPki } from "../../src/pki/testing.js";
import type { LogAttrs, Logger } from "../../src/shared/logger.js";

const nonceKey = generateKeyPairSync("ed25519").privateKey;
const HASH = "sha256:registration-test";

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string } & LogAttrs> } {
  const lines: Array<{ level: string; msg: string } & LogAttrs> = [];
  const at =
    (level: string) =>
    (msg: string, attrs?: LogAttrs): void => {
      lines.push({ level, msg, ...attrs });
    };
  const logger = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

function nonceFor(id: string, opts: { now?: Date; ttlMs?: number } = {}): Promise<string> {
  return mintNonceJwt(
    {
      subject: id,
      kind: "agent",
      clusterId: "test-cluster",
      shard: "s",
      group: "g",
      onDemand: false,
      tenant: "default",
      configHash: HASH,
    },
    { signingKey: nonceKey, ttlMs: opts.ttlMs ?? 3_600_000, now: opts.now },
  );
}

describe("ensureRegistered", () => {
  let pki: TestPki;
  const roots: string[] = [];
  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  async function setup(nonce: string | undefined) {
    const root = await mkdtemp(join(tmpdir(), "nstance-reg-"));
    roots.push(root);
    const logger = recordingLogger();
    const identity = new IdentityDir({ dir: join(root, "identity"), logger });
    await identity.ensure();
    await writeFile(identity.caCertPath, pki.caCertPem);
    if (nonce !== undefined) await writeFile(identity.noncePath, nonce);
    const keyStore = new KeyStore({
      keysDir: join(root, "keys"),
      identityDir: identity.dir,
      logger,
    });
    const base = {
      identity,
      keyStore,
      ipv4: "10.0.0.7",
      ipv6: "",
      hostname: "vm-7",
      logger,
      backoff: { initialMs: 5, maxMs: 20 },
      rejectedRetryMs: 30,
    };
    return { root, identity, keyStore, logger, base };
  }

  /** A call that issues a real certificate for the request's key, for `id`. */
  const issuing =
    (id: string): RegisterAgentCall =>
    async (_addr, _ca, req) => {
      const issued = await issueClientCertificate({
        ca: pki.ca,
        publicKeyPem: req.publicKeyPem,
        clientId: id,
        tenant: "default",
        role: "agent",
      });
      return {
        clientCertificatePem: Buffer.from(issued.certificatePem),
        expiresAt: issued.expiresAt,
      };
    };

  it("skips a standby, registers with the leader, stores the cert, writes config.hash, deletes the nonce", async () => {
    const id = "tst00000000000000000000000001";
    const { identity, base } = await setup(await nonceFor(id));
    const calls: Array<{ addr: string; ipv4: string; hostname: string; key: string }> = [];
    const leaderCall = issuing(id);
    const result = await ensureRegistered(
      {
        ...base,
        addrs: ["standby:8992", "leader:8992"],
        registerAgent: async (addr, ca, req, signal) => {
          calls.push({
            addr,
            ipv4: req.privateIpv4,
            hostname: req.hostname,
            key: req.publicKeyPem.toString(),
          });
          if (addr === "standby:8992") throw grpcError(status.FAILED_PRECONDITION, "not leader");
          return leaderCall(addr, ca, req, signal);
        },
      },
      new AbortController().signal,
    );
    assert.deepEqual(
      calls.map((c) => c.addr),
      ["standby:8992", "leader:8992"],
    );
    assert.equal(calls[1]!.ipv4, "10.0.0.7");
    assert.equal(calls[1]!.hostname, "vm-7");
    const keyPem = await readFile(identity.keyPath, "utf8");
    assert.equal(
      calls[1]!.key,
      createPublicKey(keyPem).export({ type: "spki", format: "pem" }).toString(),
    );
    assert.equal(result.instanceId, id);
    assert.equal(result.registered, true);
    assert.equal(await identity.readCertificate(), result.certificatePem);
    assert.equal(await identity.readConfigHash(), HASH);
    assert.equal(await identity.readNonce(), undefined);
    assert.equal((await stat(identity.certificatePath)).mode & 0o777, 0o600);
  });

  it("reuses a valid stored certificate without calling the server", async () => {
    const id = "tst00000000000000000000000002";
    const { base } = await setup(await nonceFor(id));
    const first = await ensureRegistered(
      { ...base, addrs: ["a:1"], registerAgent: issuing(id) },
      new AbortController().signal,
    );
    const second = await ensureRegistered(
      {
        ...base,
        addrs: ["a:1"],
        registerAgent: () => assert.fail("must not register again"),
      },
      new AbortController().signal,
    );
    assert.equal(second.registered, false);
    assert.equal(second.certificatePem, first.certificatePem);
    assert.equal(second.instanceId, id);
  });

  it("finishes an interrupted registration: cert stored but nonce still there", async () => {
    const id = "tst00000000000000000000000003";
    const { identity, keyStore, base } = await setup(await nonceFor(id));
    const key = await keyStore.ensureIdentityKey();
    const issued = await issueClientCertificate({
      ca: pki.ca,
      publicKeyPem: key.publicKeyPem,
      clientId: id,
      tenant: "default",
      role: "agent",
    });
    await identity.writeCertificate(issued.certificatePem);
    const r = await ensureRegistered(
      { ...base, addrs: ["a:1"], registerAgent: () => assert.fail("no call") },
      new AbortController().signal,
    );
    assert.equal(r.registered, false);
    assert.equal(await identity.readNonce(), undefined);
    assert.equal(await identity.readConfigHash(), HASH);
  });

  it("waits slowly on an expired nonce and picks up a replaced one without a restart", async () => {
    const id = "tst00000000000000000000000004";
    const expired = await nonceFor(id, { now: new Date(Date.now() - 7_200_000) });
    const { identity, logger, base } = await setup(expired);
    let calls = 0;
    const done = ensureRegistered(
      {
        ...base,
        addrs: ["a:1"],
        registerAgent: async (...args) => {
          calls++;
          return issuing(id)(...args);
        },
      },
      new AbortController().signal,
    );
    while (!logger.lines.some((l) => l.level === "error")) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const line = logger.lines.find((l) => l.level === "error")!;
    assert.match(String(line.err), /expired at .* needs a new nonce/);
    assert.equal(line.retry_in_ms, 30);
    assert.equal(calls, 0, "an expired nonce is never sent");
    await writeFile(identity.noncePath, await nonceFor(id));
    const r = await done;
    assert.equal(r.registered, true);
    assert.equal(calls, 1);
  });

  it("a rejected nonce waits the slow interval, not the transient backoff", async () => {
    const id = "tst00000000000000000000000005";
    const { logger, base } = await setup(await nonceFor(id));
    const ac = new AbortController();
    const times: number[] = [];
    const done = ensureRegistered(
      {
        ...base,
        rejectedRetryMs: 200,
        addrs: ["leader:1", "never:1"],
        registerAgent: async (addr) => {
          assert.equal(addr, "leader:1", "a rejection is final for this round");
          times.push(Date.now());
          if (times.length === 2) ac.abort();
          throw grpcError(status.UNAUTHENTICATED, "registration nonce signature is invalid");
        },
      },
      ac.signal,
    );
    await assert.rejects(done);
    assert.equal(times.length, 2);
    assert.ok(times[1]! - times[0]! >= 190, `retried after ${times[1]! - times[0]!} ms`);
    const errors = logger.lines.filter((l) => l.level === "error");
    assert.match(
      String(errors[0]!.err),
      /leader:1 rejected the registration: .*signature is invalid/,
    );
    assert.doesNotMatch(JSON.stringify(logger.lines), /eyJ/, "the nonce is never logged");
  });

  it("retries transient failures with backoff until the server answers", async () => {
    const id = "tst00000000000000000000000006";
    const { logger, base } = await setup(await nonceFor(id));
    let calls = 0;
    const r = await ensureRegistered(
      {
        ...base,
        addrs: ["a:1"],
        registerAgent: async (...args) => {
          calls++;
          if (calls < 4) throw grpcError(status.UNAVAILABLE, "connection refused");
          return issuing(id)(...args);
        },
      },
      new AbortController().signal,
    );
    assert.equal(r.registered, true);
    assert.equal(calls, 4);
    assert.equal(logger.lines.filter((l) => l.msg === "Registration failed; retrying").length, 3);
    assert.equal(logger.lines.filter((l) => l.level === "error").length, 0);
  });

  it("refuses a returned certificate for another key (and keeps retrying)", async () => {
    const id = "tst00000000000000000000000007";
    const { identity, logger, base } = await setup(await nonceFor(id));
    const ac = new AbortController();
    const other = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" });
    let calls = 0;
    const done = ensureRegistered(
      {
        ...base,
        addrs: ["a:1"],
        registerAgent: async (addr, ca, req, signal) => {
          if (++calls === 2) ac.abort();
          return issuing(id)(addr, ca, { ...req, publicKeyPem: Buffer.from(other) }, signal);
        },
      },
      ac.signal,
    );
    await assert.rejects(done);
    assert.match(
      String(logger.lines.find((l) => l.msg === "Registration failed; retrying")?.err),
      /does not match identity\.key/,
    );
    assert.equal(await identity.readCertificate(), undefined);
    assert.notEqual(await identity.readNonce(), undefined, "nonce kept for the next try");
  });
});

describe("classifyRegistrationStatus", () => {
  for (const [code, want] of [
    [status.FAILED_PRECONDITION, "next_server"],
    [status.UNAUTHENTICATED, "rejected"],
    [status.INVALID_ARGUMENT, "rejected"],
    [status.PERMISSION_DENIED, "rejected"],
    [status.UNAVAILABLE, "transient"],
    [status.DEADLINE_EXCEEDED, "transient"],
    [status.INTERNAL, "transient"],
  ] as const) {
    it(`${status[code]} → ${want}`, () => assert.equal(classifyRegistrationStatus(code), want));
  }
});

describe("checkAgentCertificate", () => {
  it("accepts a current certificate for the key and names each problem otherwise", async () => {
    const pki = await createTestPki();
    const otherPki = await createTestPki();
    const { publicKey } = generateKeyPairSync("ed25519");
    const pub = publicKey.export({ type: "spki", format: "pem" }).toString();
    const issue = (ca = pki.ca, now?: Date) =>
      issueClientCertificate({
        ca,
        publicKeyPem: pub,
        clientId: "tst00000000000000000000000008",
        tenant: "default",
        role: "agent",
        now,
        ttlMs: 3_600_000,
      }).then((c) => c.certificatePem);
    const now = Date.now();
    assert.equal(checkAgentCertificate(await issue(), pki.caCertPem, pub, now), undefined);
    assert.match(
      checkAgentCertificate(await issue(otherPki.ca), pki.caCertPem, pub, now) ?? "",
      /not signed by the cluster CA/,
    );
    assert.match(
      checkAgentCertificate(
        await issue(pki.ca, new Date(now - 7_200_000)),
        pki.caCertPem,
        pub,
        now,
      ) ?? "",
      /expired at/,
    );
    const otherKey = generateKeyPairSync("ed25519").publicKey.export({
      type: "spki",
      format: "pem",
    });
    assert.match(
      checkAgentCertificate(await issue(), pki.caCertPem, otherKey.toString(), now) ?? "",
      /does not match identity\.key/,
    );
    assert.equal(
      checkAgentCertificate("garbage", pki.caCertPem, pub, now),
      "not a PEM certificate",
    );
  });
});
