// SPDX-License-Identifier: Apache-2.0
// AdminService against fake Operator APIs over real mutual TLS 1.3.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { createTestPki, issueTestClientCertificate, type TestPki } from "../../pki/testing.js";
import { silentLogger } from "../../shared/logger.js";
import { FakeOperatorServer } from "../testing.js";
import { AdminService } from "./admin-service.js";
import type { OperatorIdentityPem } from "./operator-identity.js";
import type { ShardServer } from "./shard-servers.js";

/** A localhost port that nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe("AdminService", () => {
  let pki: TestPki;
  let identity: OperatorIdentityPem;
  let s1: FakeOperatorServer;
  let s2: FakeOperatorServer;
  let servers: ShardServer[];
  let downAddress: string;

  before(async () => {
    pki = await createTestPki("c1");
    const op = await issueTestClientCertificate(pki.ca, { clientId: "op1", role: "operator" });
    identity = { caCertPem: pki.caCertPem, ...op };
    s1 = await new FakeOperatorServer().start(pki);
    s2 = await new FakeOperatorServer().start(pki);
    downAddress = `localhost:${await closedPort()}`;
    servers = [
      { shard: "s1", address: s1.address },
      { shard: "s2", address: s2.address },
    ];
  });

  after(async () => {
    await Promise.all([s1.stop(), s2.stop()]);
  });

  const service = (list = servers, id = identity, timeoutMs = 10_000): AdminService =>
    new AdminService({
      servers: list,
      identity: id,
      timeoutMs,
      retryWindowMs: 1_000,
      logger: silentLogger,
    });

  it("lists the groups of the certificate's tenant on every shard, labelled by shard", async () => {
    s1.addGroup({ key: "web", size: 2, actualSize: 1, providerIds: ["i-1"] });
    s1.addGroup({ key: "other-tenant", tenant: "acme" });
    s2.addGroup({ key: "db", template: "pg", isStatic: true, vars: { v: "1" } });
    const svc = service();
    try {
      const results = await svc.listGroups({ allShards: true });
      assert.deepEqual(
        results.map((r) => [r.shard, r.ok && r.value.map((g) => g.key)]),
        [
          ["s1", ["web"]],
          ["s2", ["db"]],
        ],
      );
      const db = results[1]!.ok ? results[1]!.value[0]! : undefined;
      assert.equal(db?.template, "pg");
      assert.equal(db?.isStatic, true);
      assert.deepEqual(db?.vars, { v: "1" });
    } finally {
      await svc.stop();
    }
  });

  it("creates a group, refusing where it already exists without changing it", async () => {
    const svc = service();
    try {
      const results = await svc.createGroup(
        { allShards: true },
        { key: "web", template: "knc", size: 4, vars: { a: "b" } },
      );
      assert.equal(results[0]!.ok, false, "s1 already has web");
      assert.equal(!results[0]!.ok && results[0]!.error.code, "already_exists");
      assert.equal(s1.groups.get("default/web")?.size, 2, "s1's group untouched");
      assert.ok(results[1]!.ok);
      assert.equal(results[1]!.value.template, "knc");
      assert.equal(results[1]!.value.size, 4);
      assert.deepEqual(s2.groups.get("default/web")?.vars, { a: "b" });
    } finally {
      await svc.stop();
    }
  });

  it("scales with only the size, keeping the rest of the group", async () => {
    s1.addGroup({ key: "api", template: "knc", instanceType: "m6i.large", size: 1 });
    const svc = service();
    try {
      const [r] = await svc.scaleGroup({ shard: "s1" }, "api", 7);
      assert.ok(r?.ok);
      assert.equal(r.value.size, 7);
      assert.equal(r.value.template, "knc");
      assert.equal(s1.groups.get("default/api")?.instanceType, "m6i.large");
    } finally {
      await svc.stop();
    }
  });

  it("scaling a missing group fails with not_found and sends no upsert", async () => {
    const svc = service();
    const before = s1.calls.length;
    try {
      const [r] = await svc.scaleGroup({ shard: "s1" }, "nope", 3);
      assert.ok(r && !r.ok);
      assert.equal(r.error.code, "not_found");
      assert.equal(r.error.message, "shard s1: group nope not found");
      assert.deepEqual(s1.calls.slice(before), ["ListGroups"]);
    } finally {
      await svc.stop();
    }
  });

  it("reports the server's not-leader message labelled with the shard", async () => {
    s2.notLeaderMessage = "not the shard leader; the leader is s2-b at 10.0.0.2:8993";
    const svc = service();
    try {
      const [r] = await svc.scaleGroup({ shard: "s2" }, "db", 3);
      assert.ok(r && !r.ok);
      assert.equal(r.error.code, "precondition_failed");
      assert.equal(
        r.error.message,
        "shard s2: not the shard leader; the leader is s2-b at 10.0.0.2:8993",
      );
    } finally {
      s2.notLeaderMessage = undefined;
      await svc.stop();
    }
  });

  it("deletes a group and reports not_found for an unknown one", async () => {
    const svc = service();
    try {
      const [ok] = await svc.deleteGroup({ shard: "s2" }, "web");
      assert.ok(ok?.ok);
      assert.equal(s2.groups.has("default/web"), false);
      const [missing] = await svc.deleteGroup({ shard: "s2" }, "web");
      assert.ok(missing && !missing.ok);
      assert.equal(missing.error.code, "not_found");
    } finally {
      await svc.stop();
    }
  });

  it("reads config status and refreshes, passing a refused refresh through", async () => {
    const svc = service();
    try {
      const [status] = await svc.configStatus({ shard: "s1" });
      assert.ok(status?.ok);
      assert.equal(status.value.etag, "etag-1");
      assert.equal(status.value.sizeBytes, 1234);
      const [refresh] = await svc.refreshConfig({ shard: "s1" });
      assert.ok(refresh?.ok);
      assert.deepEqual(refresh.value, { updated: true, prevEtag: "etag-1", etag: "etag-2" });
      s2.refreshError = "config/s2.jsonc:3:5: groups.default.web.size: must be >= 0";
      const [refused] = await svc.refreshConfig({ shard: "s2" });
      assert.ok(refused && !refused.ok);
      assert.equal(refused.error.code, "invalid_argument");
      assert.match(refused.error.message, /^shard s2: config\/s2\.jsonc:3:5/);
    } finally {
      s2.refreshError = undefined;
      await svc.stop();
    }
  });

  it("keeps the healthy shards' results when one shard is unreachable", async () => {
    const svc = service([...servers, { shard: "s3", address: downAddress }]);
    try {
      const results = await svc.listGroups({ allShards: true });
      assert.deepEqual(
        results.map((r) => [r.shard, r.ok]),
        [
          ["s1", true],
          ["s2", true],
          ["s3", false],
        ],
      );
      const down = results[2]!;
      assert.ok(!down.ok);
      assert.equal(down.error.code, "unavailable");
      assert.match(
        down.error.message,
        new RegExp(`^shard s3 \\(${downAddress}\\): cannot reach the server: .*ECONNREFUSED`),
      );
    } finally {
      await svc.stop();
    }
  });

  it("fails the handshake with a certificate from another CA (unavailable, no call served)", async () => {
    const other = await createTestPki("c2");
    const op = await issueTestClientCertificate(other.ca, { clientId: "x", role: "operator" });
    const svc = service(servers, { caCertPem: pki.caCertPem, ...op });
    const before = s1.calls.length;
    try {
      const [r] = await svc.listGroups({ shard: "s1" });
      assert.ok(r && !r.ok);
      assert.equal(r.error.code, "unavailable");
      assert.equal(s1.calls.length, before);
    } finally {
      await svc.stop();
    }
  });

  it("rejects a selection naming an unknown shard before calling anything", async () => {
    const svc = service();
    try {
      await assert.rejects(svc.listGroups({ shard: "zz" }), /shard zz is not in the server list/);
    } finally {
      await svc.stop();
    }
  });

  describe("an HA set (a shard listed more than once)", () => {
    let standby: FakeOperatorServer;
    let leader: FakeOperatorServer;

    before(async () => {
      standby = await new FakeOperatorServer().start(pki);
      leader = await new FakeOperatorServer().start(pki);
    });

    after(async () => {
      await Promise.all([standby.stop(), leader.stop()]);
    });

    it("moves past a server that refuses connections", async () => {
      const svc = service([
        { shard: "ha", address: downAddress, addresses: [downAddress, leader.address] },
      ]);
      try {
        const [r] = await svc.createGroup({ shard: "ha" }, { key: "g1", template: "t", size: 1 });
        assert.ok(r?.ok, r && !r.ok ? r.error.message : "");
        assert.equal(r.address, leader.address, "the result names the address that answered");
        assert.equal(leader.groups.get("default/g1")?.size, 1);
      } finally {
        await svc.stop();
      }
    });

    it("follows a standby's refusal to the leader and keeps calling the leader", async () => {
      standby.notLeaderMessage = `not the shard leader; the leader is s2 (operator ${leader.address})`;
      const svc = service([
        { shard: "ha", address: standby.address, addresses: [standby.address, leader.address] },
      ]);
      try {
        const [first] = await svc.createGroup(
          { shard: "ha" },
          { key: "g2", template: "t", size: 2 },
        );
        assert.ok(first?.ok, first && !first.ok ? first.error.message : "");
        assert.equal(first.address, leader.address);
        assert.deepEqual(standby.calls, ["ListGroups", "UpsertGroup"], "refused, nothing applied");
        assert.equal(standby.groups.size, 0);
        assert.equal(leader.groups.get("default/g2")?.size, 2);
        const [second] = await svc.scaleGroup({ shard: "ha" }, "g2", 3);
        assert.ok(second?.ok);
        assert.deepEqual(
          standby.calls,
          ["ListGroups", "UpsertGroup"],
          "the leader is called first",
        );
        assert.equal(leader.groups.get("default/g2")?.size, 3);
      } finally {
        standby.notLeaderMessage = undefined;
        await svc.stop();
      }
    });

    it("retries while no server leads, until the retry window ends", async () => {
      standby.notLeaderMessage = "not the shard leader; no leader elected yet";
      leader.notLeaderMessage = "not the shard leader; no leader elected yet";
      const svc = service([
        { shard: "ha", address: standby.address, addresses: [standby.address, leader.address] },
      ]);
      const before = standby.calls.length + leader.calls.length;
      try {
        const t0 = Date.now();
        const [r] = await svc.deleteGroup({ shard: "ha" }, "g2");
        assert.ok(r && !r.ok);
        assert.equal(r.error.code, "precondition_failed");
        assert.match(r.error.message, /no leader elected yet/);
        assert.ok(standby.calls.length + leader.calls.length - before >= 4, "several passes");
        assert.ok(Date.now() - t0 >= 600, "backed off between passes");
        assert.ok(leader.groups.has("default/g2"), "nothing deleted");
      } finally {
        standby.notLeaderMessage = undefined;
        leader.notLeaderMessage = undefined;
        await svc.stop();
      }
    });

    it("retries a read whose outcome is unknown on the other server, but not a write", async () => {
      const svc = service([
        { shard: "ha", address: standby.address, addresses: [standby.address, leader.address] },
      ]);
      try {
        standby.failListGroups = 1;
        const [read] = await svc.listGroups({ shard: "ha" });
        assert.ok(read?.ok, read && !read.ok ? read.error.message : "");
        assert.equal(read.address, leader.address, "answered by the other server");
        assert.equal(standby.failListGroups, 0, "the first attempt failed part-way");

        // scaleGroup reads the group, then writes: its first ListGroups failing part-way ends it.
        leader.failListGroups = 1;
        const sizeBefore = leader.groups.get("default/g2")?.size;
        const [write] = await svc.scaleGroup({ shard: "ha" }, "g2", 9);
        assert.ok(write && !write.ok);
        assert.match(write.error.message, /ListGroups: outcome unknown/);
        assert.equal(leader.groups.get("default/g2")?.size, sizeBefore, "nothing written");
      } finally {
        standby.failListGroups = 0;
        leader.failListGroups = 0;
        await svc.stop();
      }
    });

    it("does not retry a call whose outcome is unknown, and says so", async () => {
      const svc = service(
        [{ shard: "ha", address: standby.address, addresses: [standby.address, leader.address] }],
        identity,
        1,
      );
      const before = leader.calls.length;
      try {
        const [r] = await svc.deleteGroup({ shard: "ha" }, "g2");
        assert.ok(r && !r.ok);
        assert.equal(r.error.code, "deadline_exceeded");
        assert.equal(r.address, standby.address);
        assert.match(
          r.error.message,
          new RegExp(`^shard ha \\(${standby.address}\\): DeleteGroup: outcome unknown`),
        );
        assert.equal(leader.calls.length, before, "not sent to the other server");
      } finally {
        await svc.stop();
      }
    });
  });
});
