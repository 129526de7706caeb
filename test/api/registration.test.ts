// SPDX-License-Identifier: Apache-2.0
// RegisterAgent and RegisterOperator over real grpc-js and TLS 1.3: every refusal with the status
// code the reference documents, single use of agent nonces, operator nonce binding to one key.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import { getInstance } from "../../src/db/instances-table.js";
import { getOperator } from "../../src/db/operators-table.js";
import { parseClientIdentity } from "../../src/pki/client-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { mintNonceJwt } from "../../src/pki/nonce-jwt.js";
import type { ListGroupsResponse } from "../../src/protocol/gen/nstance/v1/operator.js";
import type {
  RegisterAgentRequest,
  RegisterAgentResponse,
  RegistrationServiceClient,
} from "../../src/protocol/gen/nstance/v1/registration.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { operatorRecordKey } from "../../src/server/api/registration/operator-record.js";
import {
  operatorClientId,
  operatorNonceKey,
} from "../../src/server/api/registration/register-operator.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import type { PutOptions } from "../../src/storage/object-storage.js";
import {
  type ApiFixture,
  CLUSTER_ID,
  call,
  rejectsWithCode,
  SHARD,
  startApiFixture,
} from "./api-fixture.js";

const HOUR_MS = 3_600_000;

function register(
  client: RegistrationServiceClient,
  kind: "agent" | "operator",
  req: Partial<RegisterAgentRequest> & { registrationNonceJwt: string },
): Promise<RegisterAgentResponse> {
  const full: RegisterAgentRequest = {
    publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem),
    privateIpv4: "",
    privateIpv6: "",
    hostname: "",
    ...req,
  };
  return call<RegisterAgentResponse>((m, o, cb) =>
    kind === "agent"
      ? client.registerAgent(full, m, o, cb)
      : client.registerOperator(full, m, o, cb),
  );
}

describe("RegisterAgent", () => {
  let f: ApiFixture;
  let client: RegistrationServiceClient;
  before(async () => {
    f = await startApiFixture();
    client = f.registration();
  });
  after(() => f.close());

  it("exchanges an issued nonce for an agent certificate and records the registration", async () => {
    const nonce = await f.issueAgentNonce({ id: "web01", providerId: "i-001" });
    const keys = generateEd25519KeyPair();
    const res = await register(client, "agent", {
      registrationNonceJwt: nonce,
      publicKeyPem: Buffer.from(keys.publicKeyPem),
      privateIpv4: "10.0.0.7",
      hostname: "web01.internal",
    });
    const id = parseClientIdentity(res.clientCertificatePem.toString());
    assert.deepEqual(
      { clientId: id.clientId, tenant: id.tenant, role: id.role },
      { clientId: "web01", tenant: "default", role: "agent" },
    );
    // Default TTL 24 h (no certificates.agent in the config).
    const ttl = (res.expiresAt?.getTime() ?? 0) - Date.now();
    assert.ok(ttl > 23 * HOUR_MS && ttl <= 24 * HOUR_MS, `ttl ${ttl}`);

    const row = getInstance(f.db, "web01");
    assert.ok(row?.registeredAt);
    assert.equal(row.ip4, "10.0.0.7");
    assert.equal(row.hostname, "web01.internal");
    assert.equal(row.certSerial, id.serial);
    assert.equal(row.instancePub, keys.publicKeyPem);

    const stored = await f.storage.get(instanceRecordKey(`shard/${SHARD}/`, "default", "web01"));
    assert.ok(stored, "instance record written");
    const record = JSON.parse(stored.body.toString()) as Record<string, unknown>;
    assert.equal(record.instance_id, "web01");
    assert.equal(record.private_ipv4, "10.0.0.7");
    assert.equal(record.cert_serial, id.serial);
    assert.equal(record.public_key_pem, keys.publicKeyPem);
    assert.equal(typeof record.registered_at, "string");
    assert.equal(record.registration_jwt, undefined, "the nonce is never stored in the record");
  });

  it("keeps the fields of an existing instance record (read-modify-write)", async () => {
    const nonce = await f.issueAgentNonce({ id: "web02" });
    const key = instanceRecordKey(`shard/${SHARD}/`, "default", "web02");
    await f.storage.put(
      key,
      JSON.stringify({ instance_id: "web02", provider_instance_id: "i-xyz", status: "pending" }),
    );
    await register(client, "agent", { registrationNonceJwt: nonce, privateIpv6: "fd00::2" });
    const record = JSON.parse((await f.storage.get(key))!.body.toString()) as Record<
      string,
      unknown
    >;
    assert.equal(record.provider_instance_id, "i-xyz");
    assert.equal(record.private_ipv6, "fd00::2");
    assert.equal(typeof record.cert_serial, "string");
  });

  it("refuses a replayed nonce with UNAUTHENTICATED", async () => {
    const nonce = await f.issueAgentNonce({ id: "web03" });
    await register(client, "agent", { registrationNonceJwt: nonce });
    const err = await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: nonce }),
      status.UNAUTHENTICATED,
    );
    assert.match(err.details, /already been used/);
  });

  it("lets exactly one of many concurrent registrations with one nonce through", async () => {
    const nonce = await f.issueAgentNonce({ id: "web04" });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => register(client, "agent", { registrationNonceJwt: nonce })),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) {
      if (r.status === "rejected")
        assert.equal((r.reason as { code: number }).code, status.UNAUTHENTICATED);
    }
  });

  it("refuses a forged signature with UNAUTHENTICATED", async () => {
    await f.issueAgentNonce({ id: "web05" });
    const forged = await mintNonceJwt(
      {
        subject: "web05",
        kind: "agent",
        clusterId: CLUSTER_ID,
        shard: SHARD,
        group: "web",
        onDemand: false,
        tenant: "default",
        configHash: "",
      },
      { signingKey: generateKeyPairSync("ed25519").privateKey, ttlMs: 60_000 },
    );
    const err = await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: forged }),
      status.UNAUTHENTICATED,
    );
    assert.match(err.details, /signature/);
  });

  it("refuses an expired token with UNAUTHENTICATED", async () => {
    const expired = await f.mintNonce(
      { subject: "web06" },
      { ttlMs: 60_000, now: new Date(Date.now() - 2 * HOUR_MS) },
    );
    const err = await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: expired }),
      status.UNAUTHENTICATED,
    );
    assert.match(err.details, /expired/);
  });

  it("refuses a nonce of another cluster or shard with INVALID_ARGUMENT", async () => {
    const otherCluster = await f.mintNonce({ subject: "web07", clusterId: "elsewhere" });
    assert.match(
      (
        await rejectsWithCode(
          register(client, "agent", { registrationNonceJwt: otherCluster }),
          status.INVALID_ARGUMENT,
        )
      ).details,
      /another cluster/,
    );
    const otherShard = await f.mintNonce({ subject: "web07", shard: "us-east-1a" });
    assert.match(
      (
        await rejectsWithCode(
          register(client, "agent", { registrationNonceJwt: otherShard }),
          status.INVALID_ARGUMENT,
        )
      ).details,
      /shard/,
    );
  });

  it("refuses a well-signed nonce this shard never issued with UNAUTHENTICATED", async () => {
    const stray = await f.mintNonce({ subject: "never-created" });
    await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: stray }),
      status.UNAUTHENTICATED,
    );
  });

  it("refuses an operator token on the agent path with UNAUTHENTICATED", async () => {
    const op = await f.mintNonce({ kind: "operator", subject: CLUSTER_ID, shard: "", group: "" });
    const err = await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: op }),
      status.UNAUTHENTICATED,
    );
    assert.match(err.details, /kind/);
  });

  it("refuses a key that is not Ed25519 with INVALID_ARGUMENT and leaves the nonce usable", async () => {
    const nonce = await f.issueAgentNonce({ id: "web08" });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    const err = await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: nonce, publicKeyPem: Buffer.from(rsa) }),
      status.INVALID_ARGUMENT,
    );
    assert.match(err.details, /Ed25519/);
    await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: nonce, publicKeyPem: Buffer.from("junk") }),
      status.INVALID_ARGUMENT,
    );
    await register(client, "agent", { registrationNonceJwt: nonce });
    assert.ok(getInstance(f.db, "web08")?.registeredAt);
  });

  it("refuses a deleted instance's nonce with UNAUTHENTICATED", async () => {
    const nonce = await f.issueAgentNonce({ id: "web09" });
    f.db.prepare("UPDATE instances SET deleted_at = ? WHERE id = ?").run(Date.now(), "web09");
    await rejectsWithCode(
      register(client, "agent", { registrationNonceJwt: nonce }),
      status.UNAUTHENTICATED,
    );
  });

  it("on a standby answers FAILED_PRECONDITION naming the leader, and spends nothing", async () => {
    const nonce = await f.issueAgentNonce({ id: "web10" });
    f.leadership.leading = false;
    f.leadership.current = { id: "server-2", addr: "10.1.2.3:8991", term: 7 };
    try {
      const err = await rejectsWithCode(
        register(client, "agent", { registrationNonceJwt: nonce }),
        status.FAILED_PRECONDITION,
      );
      assert.equal(err.details, "not the shard leader; the leader is server-2 at 10.1.2.3:8991");
      f.leadership.current = undefined;
      const none = await rejectsWithCode(
        register(client, "agent", { registrationNonceJwt: nonce }),
        status.FAILED_PRECONDITION,
      );
      assert.equal(none.details, "not the shard leader; no leader elected yet");
    } finally {
      f.leadership.leading = true;
      f.leadership.current = { id: "server-1", addr: "127.0.0.1:8991", term: 1 };
    }
    assert.equal(getInstance(f.db, "web10")?.registeredAt, undefined);
    await register(client, "agent", { registrationNonceJwt: nonce });
  });
});

describe("RegisterAgent with certificates.agent.ttl", () => {
  let f: ApiFixture;
  before(async () => {
    f = await startApiFixture({
      configEdits: [[["certificates", "agent"], { kind: "client", ttl: 2 }]],
    });
  });
  after(() => f.close());

  it("issues certificates with the configured lifetime", async () => {
    const nonce = await f.issueAgentNonce({ id: "web01" });
    const res = await register(f.registration(), "agent", { registrationNonceJwt: nonce });
    const ttl = (res.expiresAt?.getTime() ?? 0) - Date.now();
    assert.ok(ttl > 1.9 * HOUR_MS && ttl <= 2 * HOUR_MS, `ttl ${ttl}`);
  });
});

/** Memory storage whose instance-record writes wait until released. */
class GatedStorage extends MemoryStorage {
  #gate: Promise<void> = new Promise(() => {});
  #open!: () => void;
  constructor() {
    super();
    this.#gate = new Promise<void>((r) => {
      this.#open = r;
    });
  }
  open(): void {
    this.#open();
  }
  override async put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    if (key.includes("/instance/")) await this.#gate;
    return super.put(key, body, opts);
  }
}

describe("RegisterAgent queueing", () => {
  let f: ApiFixture;
  let storage: GatedStorage;
  before(async () => {
    storage = new GatedStorage();
    f = await startApiFixture({ storage, registrationConcurrency: 1 });
  });
  after(() => f.close());

  it("drops a queued call whose deadline passed without spending its nonce", async () => {
    const client = f.registration();
    const first = await f.issueAgentNonce({ id: "web01" });
    const second = await f.issueAgentNonce({ id: "web02" });
    const holding = register(client, "agent", { registrationNonceJwt: first });
    const late = new Promise<{ code: number }>((resolve) => {
      client.registerAgent(
        {
          registrationNonceJwt: second,
          publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem),
          privateIpv4: "",
          privateIpv6: "",
          hostname: "",
        },
        new Metadata(),
        { deadline: Date.now() + 300 },
        (err) => resolve({ code: err?.code ?? status.OK }),
      );
    });
    assert.equal((await late).code, status.DEADLINE_EXCEEDED);
    storage.open();
    await holding;
    assert.equal(getInstance(f.db, "web02")?.registeredAt, undefined, "no work was done for it");
    await register(client, "agent", { registrationNonceJwt: second });
    assert.ok(getInstance(f.db, "web02")?.registeredAt);
  });
});

describe("RegisterOperator", () => {
  let f: ApiFixture;
  let client: RegistrationServiceClient;
  before(async () => {
    f = await startApiFixture();
    client = f.registration();
  });
  after(() => f.close());

  // Nonces carry no random claim: two minted in the same second with equal claims are the same
  // token. A distinct subject-independent claim (tenant) keeps each test's nonce its own.
  let seq = 0;
  const operatorNonce = (tenant = `tenant-${++seq}`) =>
    f.mintNonce({ kind: "operator", subject: CLUSTER_ID, shard: "", group: "", tenant });

  it("registers an operator, binds the nonce to its key, and the certificate works", async () => {
    const nonce = await operatorNonce("default");
    const keys = generateEd25519KeyPair();
    const res = await register(client, "operator", {
      registrationNonceJwt: nonce,
      publicKeyPem: Buffer.from(keys.publicKeyPem),
    });
    const id = parseClientIdentity(res.clientCertificatePem.toString());
    assert.equal(id.role, "operator");
    assert.equal(id.tenant, "default");
    assert.equal(id.clientId, operatorClientId(nonce));

    const bound = await f.storage.get(operatorNonceKey(nonce));
    assert.equal(bound?.body.toString(), keys.publicKeyPem);
    const record = await f.storage.get(operatorRecordKey("default", id.clientId));
    assert.ok(record);
    assert.equal(
      (JSON.parse(record.body.toString()) as { cert_serial: string }).cert_serial,
      id.serial,
    );
    assert.equal(getOperator(f.db, id.clientId)?.certSerial, id.serial);

    const op = f.operator({
      certPem: res.clientCertificatePem.toString(),
      keyPem: keys.privateKeyPem,
    });
    const groups = await call<ListGroupsResponse>((m, o, cb) => op.listGroups({}, m, o, cb));
    assert.deepEqual(
      groups.groups.map((g) => g.key),
      ["web"],
    );
  });

  it("accepts a retry with the same key and refuses another key with UNAUTHENTICATED", async () => {
    const nonce = await operatorNonce();
    const keys = generateEd25519KeyPair();
    const first = await register(client, "operator", {
      registrationNonceJwt: nonce,
      publicKeyPem: Buffer.from(keys.publicKeyPem),
    });
    const retry = await register(client, "operator", {
      registrationNonceJwt: nonce,
      publicKeyPem: Buffer.from(keys.publicKeyPem),
    });
    assert.equal(
      parseClientIdentity(retry.clientCertificatePem.toString()).clientId,
      parseClientIdentity(first.clientCertificatePem.toString()).clientId,
    );
    const err = await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: nonce }),
      status.UNAUTHENTICATED,
    );
    assert.match(err.details, /another public key/);
  });

  it("binds a nonce to exactly one key when different keys race", async () => {
    const nonce = await operatorNonce();
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () =>
        register(client, "operator", { registrationNonceJwt: nonce }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  });

  it("refuses an agent token on the operator path with UNAUTHENTICATED", async () => {
    const nonce = await f.issueAgentNonce({ id: "web01" });
    await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: nonce }),
      status.UNAUTHENTICATED,
    );
    // The refused call did not spend the agent's nonce.
    assert.equal(getInstance(f.db, "web01")?.registeredAt, undefined);
  });

  it("refuses sub != cluster ID or another cluster with INVALID_ARGUMENT", async () => {
    const badSub = await f.mintNonce({ kind: "operator", subject: "someone", shard: "" });
    await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: badSub }),
      status.INVALID_ARGUMENT,
    );
    const otherCluster = await f.mintNonce({
      kind: "operator",
      subject: "elsewhere",
      clusterId: "elsewhere",
      shard: "",
    });
    await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: otherCluster }),
      status.INVALID_ARGUMENT,
    );
  });

  it("refuses an expired or forged operator token with UNAUTHENTICATED", async () => {
    const expired = await f.mintNonce(
      { kind: "operator", subject: CLUSTER_ID, shard: "" },
      { ttlMs: 60_000, now: new Date(Date.now() - 2 * HOUR_MS) },
    );
    await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: expired }),
      status.UNAUTHENTICATED,
    );
    await rejectsWithCode(
      register(client, "operator", { registrationNonceJwt: "not.a.jwt" }),
      status.UNAUTHENTICATED,
    );
  });

  it("on a standby answers FAILED_PRECONDITION naming the leader", async () => {
    const nonce = await operatorNonce();
    f.leadership.leading = false;
    f.leadership.current = { id: "server-9", addr: "10.9.9.9:8991", term: 3 };
    try {
      const err = await rejectsWithCode(
        register(client, "operator", { registrationNonceJwt: nonce }),
        status.FAILED_PRECONDITION,
      );
      assert.match(err.details, /server-9 at 10\.9\.9\.9:8991/);
    } finally {
      f.leadership.leading = true;
    }
    assert.equal(await f.storage.get(operatorNonceKey(nonce)), undefined, "nonce not bound");
  });
});
