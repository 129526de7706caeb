// SPDX-License-Identifier: Apache-2.0
// The Operator API over real mTLS: groups (list, upsert, delete, restricted fields), config status
// and refresh (valid and invalid: the old config stays), WatchGroups (snapshot then live), the
// standby rule, tenant isolation and certificate renewal.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { type ClientReadableStream, Metadata, status } from "@grpc/grpc-js";
import { listGroups as listGroupRows } from "../../src/db/groups-table.js";
import { parseClientIdentity } from "../../src/pki/client-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import type { Empty } from "../../src/protocol/gen/google/protobuf/empty.js";
import {
  type GetConfigStatusResponse,
  type GroupConfig,
  type GroupEvent,
  GroupEvent_Type,
  type GroupStatus,
  type ListGroupsResponse,
  type ListSecretsResponse,
  type OperatorServiceClient,
  type RefreshConfigResponse,
  type RenewCertificateResponse,
  type UpsertGroupResponse,
} from "../../src/protocol/gen/nstance/v1/operator.js";
import { groupStatusEtag } from "../../src/server/api/operator/group-status.js";
import { configKey, groupsKey } from "../../src/server/config-loader.js";
import { MemorySecretsStore } from "../../src/server/secrets/secrets-store.js";
import { shardConfigText } from "../support/shard-fixture.js";
import {
  type ApiFixture,
  type ClientCert,
  call,
  DEADLINE_MS,
  rejectsWithCode,
  SHARD,
  startApiFixture,
} from "./api-fixture.js";

const groupConfig = (c: Partial<GroupConfig>): GroupConfig => ({
  template: "",
  size: 0,
  instanceType: "",
  subnetPool: "",
  vars: {},
  args: {},
  ...c,
});

/** Reads events from a WatchGroups stream one at a time. */
class EventReader {
  readonly #events: GroupEvent[] = [];
  readonly #waiters: Array<() => void> = [];
  error: { code: number; details: string } | undefined;
  readonly stream: ClientReadableStream<GroupEvent>;
  constructor(stream: ClientReadableStream<GroupEvent>) {
    this.stream = stream;
    stream.on("data", (e: GroupEvent) => {
      this.#events.push(e);
      this.#waiters.shift()?.();
    });
    stream.on("error", (err: { code: number; details: string }) => {
      this.error = err;
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  async next(): Promise<GroupEvent> {
    while (this.#events.length === 0) {
      if (this.error) throw new Error(`stream ended: ${this.error.details}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return this.#events.shift()!;
  }
  async ended(): Promise<{ code: number; details: string }> {
    while (!this.error) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.error;
  }
}

describe("Operator API", () => {
  let f: ApiFixture;
  let ownCert: ClientCert;
  let op: OperatorServiceClient;
  let other: OperatorServiceClient;

  const list = (c = op) => call<ListGroupsResponse>((m, o, cb) => c.listGroups({}, m, o, cb));
  const upsert = (key: string, config: Partial<GroupConfig> | undefined, c = op) =>
    call<UpsertGroupResponse>((m, o, cb) =>
      c.upsertGroup({ key, config: config && groupConfig(config) }, m, o, cb),
    );
  const del = (key: string, c = op) => call<Empty>((m, o, cb) => c.deleteGroup({ key }, m, o, cb));
  const refresh = () => call<RefreshConfigResponse>((m, o, cb) => op.refreshConfig({}, m, o, cb));
  const configStatus = () =>
    call<GetConfigStatusResponse>((m, o, cb) => op.getConfigStatus({}, m, o, cb));
  const byKey = (r: ListGroupsResponse, key: string) => r.groups.find((g) => g.key === key);
  const storedGroups = async () =>
    JSON.parse((await f.storage.get(groupsKey(SHARD)))?.body.toString() ?? "{}") as Record<
      string,
      Record<string, Record<string, unknown>>
    >;

  before(async () => {
    f = await startApiFixture();
    ownCert = await f.clientCert({ clientId: "opr-a", tenant: "default", role: "operator" });
    op = f.operator(ownCert);
    other = f.operator(
      await f.clientCert({ clientId: "opr-b", tenant: "other", role: "operator" }),
    );
  });
  after(() => f.close());
  beforeEach(() => {
    f.leadership.leading = true;
  });

  describe("ListGroups", () => {
    it("lists the tenant's groups with their status, size from active managed instances", async () => {
      await f.issueAgentNonce({ id: "web0b", providerId: "i-0b" });
      await f.issueAgentNonce({ id: "web0a", providerId: "i-0a" });
      await f.issueAgentNonce({ id: "web0p" }); // no provider ID yet: not counted
      await f.issueAgentNonce({ id: "web0d", providerId: "i-0d" });
      f.db
        .prepare("UPDATE instances SET provider_state = ? WHERE id = ?")
        .run(JSON.stringify({ status: "deleting" }), "web0d");
      await f.issueAgentNonce({ id: "web0o", providerId: "i-0o" });
      f.db.prepare("UPDATE instances SET on_demand = 1 WHERE id = ?").run("web0o");

      const web = byKey(await list(), "web");
      assert.ok(web);
      assert.deepEqual(
        { ...web, etag: "" },
        {
          key: "web",
          tenant: "default",
          template: "web",
          size: 3,
          instanceType: "",
          subnetPool: "default",
          vars: { environment: "development", listen_port: "8080" },
          isStatic: true,
          etag: "",
          actualSize: 2,
          providerIds: ["i-0a", "i-0b"],
        },
      );
      assert.match(web.etag, /^[0-9a-f]{32}$/);
      assert.equal(web.etag, groupStatusEtag(web));
      assert.deepEqual((await list(other)).groups, [], "another tenant sees nothing");
    });
  });

  describe("UpsertGroup and DeleteGroup", () => {
    it("creates a dynamic group: written to groups/{shard}.jsonc, synced to SQLite, listed", async () => {
      const res = await upsert("batch", { template: "web", size: 2, vars: { tier: "low" } });
      assert.equal(res.group?.key, "batch");
      assert.equal(res.group?.isStatic, false);
      assert.equal(res.group?.size, 2);
      assert.equal(res.group?.vars.tier, "low");
      assert.deepEqual((await storedGroups()).default?.batch, {
        template: "web",
        size: 2,
        subnet_pool: "default",
        vars: { tier: "low" },
      });
      assert.ok(listGroupRows(f.db).some((r) => r.tenant === "default" && r.groupKey === "batch"));
      assert.equal(byKey(await list(), "batch")?.size, 2);
    });

    it("scales a static group through an override, changing its etag", async () => {
      const before = byKey(await list(), "web")!;
      const res = await upsert("web", { size: 5 });
      assert.equal(res.group?.size, 5);
      assert.equal(res.group?.isStatic, true);
      assert.notEqual(res.group?.etag, before.etag);
      assert.deepEqual((await storedGroups()).default?.web, { size: 5 });
    });

    it("refuses restricted fields of a static group with INVALID_ARGUMENT and a reason", async () => {
      const before = await f.storage.get(groupsKey(SHARD));
      const err = await rejectsWithCode(
        upsert("web", { template: "other-template", size: 5 }),
        status.INVALID_ARGUMENT,
      );
      assert.match(err.details, /"template" is restricted for static groups/);
      const pool = await rejectsWithCode(
        upsert("web", { subnetPool: "elsewhere", size: 5 }),
        status.INVALID_ARGUMENT,
      );
      assert.match(pool.details, /subnet_pool/);
      assert.equal((await f.storage.get(groupsKey(SHARD)))?.etag, before?.etag, "nothing written");
    });

    it("refuses invalid requests with INVALID_ARGUMENT", async () => {
      await rejectsWithCode(upsert("", { template: "web", size: 1 }), status.INVALID_ARGUMENT);
      await rejectsWithCode(upsert("x", undefined), status.INVALID_ARGUMENT);
      await rejectsWithCode(
        upsert("Bad_Key", { template: "web", size: 1 }),
        status.INVALID_ARGUMENT,
      );
      await rejectsWithCode(upsert("nt", { size: 1 }), status.INVALID_ARGUMENT); // new: no template
      const err = await rejectsWithCode(
        upsert("nt", { template: "nope", size: 1 }),
        status.INVALID_ARGUMENT,
      );
      assert.match(err.details, /nope/);
      await rejectsWithCode(upsert("nt", { template: "web", size: -1 }), status.INVALID_ARGUMENT);
    });

    it("keeps a concurrent writer's change (re-reads after a lost conditional write)", async () => {
      const current = await storedGroups();
      current.default = { ...current.default, sidecar: { template: "web", size: 1 } };
      await f.storage.put(groupsKey(SHARD), JSON.stringify(current));
      await upsert("batch", { size: 3 });
      const after = await storedGroups();
      assert.deepEqual(after.default?.sidecar, { template: "web", size: 1 });
      assert.equal(after.default?.batch?.size, 3);
      const listed = await list();
      assert.equal(byKey(listed, "sidecar")?.size, 1);
      assert.equal(byKey(listed, "batch")?.size, 3);
    });

    it("deletes dynamic groups and overrides; refuses static groups and unknown keys", async () => {
      await del("sidecar");
      assert.equal(byKey(await list(), "sidecar"), undefined);
      await del("web"); // removes the override: back to the static size
      assert.equal(byKey(await list(), "web")?.size, 3);
      assert.match(
        (await rejectsWithCode(del("web"), status.INVALID_ARGUMENT)).details,
        /static config/,
      );
      await rejectsWithCode(del("no-such-group"), status.NOT_FOUND);
      await rejectsWithCode(del(""), status.INVALID_ARGUMENT);
    });

    it("scopes every change to the caller's tenant", async () => {
      await rejectsWithCode(del("batch", other), status.NOT_FOUND);
      const res = await upsert("web", { template: "web", size: 1 }, other);
      assert.equal(res.group?.tenant, "other");
      assert.equal(res.group?.isStatic, false);
      assert.equal(byKey(await list(), "web")?.size, 3, "the owner's web is unchanged");
      assert.equal(byKey(await list(), "batch")?.size, 3);
      await del("web", other);
    });
  });

  describe("config status and refresh", () => {
    it("reports the loaded config's etag, size and last-modified time", async () => {
      const stored = await f.storage.head(configKey(SHARD));
      const res = await configStatus();
      assert.equal(res.etag, stored?.etag);
      assert.equal(res.size, stored?.size);
      assert.deepEqual(res.lastModified, stored?.lastModified);
    });

    it("loads a valid new config", async () => {
      const prev = (await configStatus()).etag;
      await f.writeConfig(await shardConfigText([[["groups", "default", "web", "size"], 4]]));
      const res = await refresh();
      assert.equal(res.updated, true);
      assert.equal(res.prevEtag, prev);
      assert.notEqual(res.etag, prev);
      assert.equal((await configStatus()).etag, res.etag);
      assert.equal(byKey(await list(), "web")?.size, 4);
      const again = await refresh();
      assert.equal(again.updated, false);
    });

    it("refuses an invalid config with INVALID_ARGUMENT listing the problems; the old one stays", async () => {
      const before = await configStatus();
      const rowsBefore = listGroupRows(f.db);
      const text = await shardConfigText([
        [["groups", "default", "web", "template"], "missing-template"],
        [["shard", "subnet_pools"], {}],
      ]);
      await f.writeConfig(text);
      const err = await rejectsWithCode(refresh(), status.INVALID_ARGUMENT);
      assert.match(err.details, /missing-template/);
      assert.match(err.details, /configuration problems/);
      assert.equal((await configStatus()).etag, before.etag);
      assert.deepEqual(listGroupRows(f.db), rowsBefore, "SQLite groups unchanged");
      assert.equal(byKey(await list(), "web")?.size, 4);
      // A syntax error too.
      await f.writeConfig("{ not json");
      await rejectsWithCode(refresh(), status.INVALID_ARGUMENT);
      await f.writeConfig(await shardConfigText([[["groups", "default", "web", "size"], 4]]));
      await refresh();
    });
  });

  describe("WatchGroups", () => {
    it("sends the tenant's groups as UPSERT, then live upserts and deletes", async () => {
      const reader = new EventReader(
        op.watchGroups({}, new Metadata(), { deadline: Date.now() + DEADLINE_MS }),
      );
      const snapshot = (await list()).groups.length;
      const seen: GroupStatus[] = [];
      for (let i = 0; i < snapshot; i++) {
        const e = await reader.next();
        assert.equal(e.type, GroupEvent_Type.TYPE_UPSERT);
        seen.push(e.group!);
      }
      assert.ok(seen.every((g) => g.tenant === "default"));
      assert.ok(seen.some((g) => g.key === "web"));

      await upsert("other", { template: "web", size: 1 }, other); // another tenant: not sent
      await upsert("live", { template: "web", size: 1 });
      const up = await reader.next();
      assert.equal(up.type, GroupEvent_Type.TYPE_UPSERT);
      assert.equal(up.group?.key, "live");
      await del("live");
      const gone = await reader.next();
      assert.equal(gone.type, GroupEvent_Type.TYPE_DELETE);
      assert.deepEqual([gone.group?.tenant, gone.group?.key], ["default", "live"]);
      reader.stream.cancel();
      await del("other", other);
    });

    it("ends an older stream of the same tenant with ABORTED when a newer one starts", async () => {
      const first = new EventReader(op.watchGroups({}, new Metadata()));
      await first.next();
      const second = new EventReader(op.watchGroups({}, new Metadata()));
      await second.next();
      const end = await first.ended();
      assert.equal(end.code, status.ABORTED);
      second.stream.cancel();
    });
  });

  describe("standby rule", () => {
    it("refuses mutating calls on a standby with FAILED_PRECONDITION naming the leader", async () => {
      f.leadership.leading = false;
      f.leadership.current = { id: "server-2", addr: "10.0.0.2:8991", term: 4 };
      const expected = "not the shard leader; the leader is server-2 at 10.0.0.2:8991";
      const refused = [
        upsert("web", { size: 1 }),
        del("batch"),
        refresh(),
        call((m, o, cb) =>
          op.renewCertificate(
            { publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem) },
            m,
            o,
            cb,
          ),
        ),
        call((m, o, cb) => op.acknowledgeDrained({ instanceId: "web0a" }, m, o, cb)),
        call((m, o, cb) =>
          op.createInstance(
            {
              instanceId: "",
              config: { group: "web", template: "", instanceType: "", subnetPool: "", vars: {} },
            },
            m,
            o,
            cb,
          ),
        ),
        call((m, o, cb) => op.deleteInstance({ instanceId: "web0a" }, m, o, cb)),
        call((m, o, cb) => op.putSecret({ name: "x", value: Buffer.from("y") }, m, o, cb)),
        call((m, o, cb) => op.deleteSecret({ name: "x" }, m, o, cb)),
      ];
      for (const p of refused) {
        assert.equal((await rejectsWithCode(p, status.FAILED_PRECONDITION)).details, expected);
      }
      // Reads still work on the standby.
      assert.ok(byKey(await list(), "web"));
      assert.ok((await configStatus()).etag);
      f.leadership.current = { id: "server-1", addr: "127.0.0.1:8991", term: 1 };
    });
  });

  describe("RenewCertificate", () => {
    it("issues a certificate with the caller's CN and tenant for a new key", async () => {
      const keys = generateEd25519KeyPair();
      const res = await call<RenewCertificateResponse>((m, o, cb) =>
        op.renewCertificate({ publicKeyPem: Buffer.from(keys.publicKeyPem) }, m, o, cb),
      );
      const id = parseClientIdentity(res.clientCertificatePem.toString());
      assert.deepEqual([id.clientId, id.tenant, id.role], ["opr-a", "default", "operator"]);
      const renewed = f.operator({
        certPem: res.clientCertificatePem.toString(),
        keyPem: keys.privateKeyPem,
      });
      assert.ok(byKey(await list(renewed), "web"));
      await rejectsWithCode(
        call((m, o, cb) => op.renewCertificate({ publicKeyPem: Buffer.from("nope") }, m, o, cb)),
        status.INVALID_ARGUMENT,
      );
    });
  });
});

describe("Operator API secrets (with a secrets store)", () => {
  let f: ApiFixture;
  let op: OperatorServiceClient;
  before(async () => {
    f = await startApiFixture({ secrets: new MemorySecretsStore() });
    op = f.operator(await f.clientCert({ clientId: "opr-a", tenant: "default", role: "operator" }));
  });
  after(() => f.close());

  it("puts, lists and deletes secrets; reserved names are PERMISSION_DENIED", async () => {
    await call((m, o, cb) =>
      op.putSecret({ name: "db-password", value: Buffer.from("pw") }, m, o, cb),
    );
    const listed = await call<ListSecretsResponse>((m, o, cb) => op.listSecrets({}, m, o, cb));
    assert.deepEqual(listed.names, ["db-password"]);
    await rejectsWithCode(
      call((m, o, cb) => op.putSecret({ name: "ca.key", value: Buffer.from("x") }, m, o, cb)),
      status.PERMISSION_DENIED,
    );
    await rejectsWithCode(
      call((m, o, cb) => op.putSecret({ name: ".hidden", value: Buffer.from("x") }, m, o, cb)),
      status.INVALID_ARGUMENT,
    );
    await call((m, o, cb) => op.deleteSecret({ name: "db-password" }, m, o, cb));
    const after = await call<ListSecretsResponse>((m, o, cb) => op.listSecrets({}, m, o, cb));
    assert.deepEqual(after.names, []);
    assert.ok(
      !f.logger.lines.some((l) => JSON.stringify(l).includes('pw"')),
      "the value never appears in logs",
    );
  });
});

describe("Operator API streams and shutdown", () => {
  let f: ApiFixture;
  let op: OperatorServiceClient;
  before(async () => {
    f = await startApiFixture();
    op = f.operator(await f.clientCert({ clientId: "opr-a", tenant: "default", role: "operator" }));
  });
  after(() => f.close());

  it("ends the handler when the client cancels a watch", async () => {
    const reader = new EventReader(op.watchGroups({}, new Metadata()));
    await reader.next();
    reader.stream.cancel();
    const path = "/nstance.v1.OperatorService/WatchGroups";
    const deadline = Date.now() + DEADLINE_MS;
    while (!f.logger.lines.some((l) => l.attrs?.method === path && l.attrs?.code === "CANCELLED")) {
      assert.ok(Date.now() < deadline, "the handler saw the cancellation");
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it("ends open watches with UNAVAILABLE when the server stops, without waiting for the grace", async () => {
    const reader = new EventReader(op.watchGroups({}, new Metadata()));
    await reader.next();
    const started = Date.now();
    await f.servers.stop(60_000);
    const end = await reader.ended();
    assert.equal(end.code, status.UNAVAILABLE);
    assert.ok(Date.now() - started < 30_000, "stop did not wait out the 60 s grace");
  });
});
