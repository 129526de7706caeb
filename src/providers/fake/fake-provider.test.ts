// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProviderError } from "../provider.js";
import { testCreateRequest, testLbConfig } from "../testing.js";
import { FakeProvider } from "./fake-provider.js";

/** A provider on a clock the test steps by hand. */
function setup(opts: ConstructorParameters<typeof FakeProvider>[0] = {}) {
  let now = 1_000_000;
  const provider = new FakeProvider({ now: () => now, ...opts });
  return {
    provider,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe("FakeProvider", () => {
  it("creates pending, then running after createDelayMs", async () => {
    const { provider, advance } = setup({ createDelayMs: 100 });
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    assert.equal(res.instanceId, req.instanceId);
    assert.match(res.providerInstanceId, /^i-[0-9a-f]{17}$/);
    assert.equal(res.status, "pending");
    assert.equal(res.launchedAt, 1_000_000);
    advance(99);
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, res.providerInstanceId))?.status,
      "pending",
    );
    advance(1);
    const st = await provider.getInstanceStatus(req.instanceId, res.providerInstanceId);
    assert.equal(st?.status, "running");
    assert.equal(st?.group, "web");
    assert.equal(st?.tenant, "default");
    assert.equal(st?.clusterId, "test-cluster");
    // Lookup by either ID works (a record may lack the provider ID after a crash).
    assert.equal((await provider.getInstanceStatus(req.instanceId, ""))?.status, "running");
  });

  it("deletes: deleting, then deleted, then gone; a second delete is not_found", async () => {
    const { provider, advance } = setup({
      createDelayMs: 0,
      deleteDelayMs: 50,
      deletedRetentionMs: 1000,
    });
    const req = testCreateRequest();
    const { providerInstanceId } = await provider.createInstance(req);
    assert.equal(await provider.deleteInstance(req.instanceId, providerInstanceId), "deleted");
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, providerInstanceId))?.status,
      "deleting",
    );
    // Deleting again while in progress is accepted and does not count twice.
    assert.equal(await provider.deleteInstance(req.instanceId, providerInstanceId), "deleted");
    advance(50);
    assert.equal(
      (await provider.getInstanceStatus(req.instanceId, providerInstanceId))?.status,
      "deleted",
    );
    assert.equal(await provider.deleteInstance(req.instanceId, providerInstanceId), "not_found");
    assert.equal(provider.instanceCount(), 0);
    assert.deepEqual(
      await provider.listInstances({ clusterId: "test-cluster", shard: "shard-a" }),
      [],
    );
    advance(1000);
    assert.equal(await provider.getInstanceStatus(req.instanceId, providerInstanceId), undefined);
    assert.equal(provider.allInstances().length, 0);
    assert.equal(provider.counters().deletes, 1);
    assert.equal(provider.counters().deleteCalls, 3);
  });

  it("lists only the cluster and shard asked for", async () => {
    const { provider } = setup();
    await provider.createInstance(testCreateRequest({ shard: "a" }));
    await provider.createInstance(testCreateRequest({ shard: "a" }));
    await provider.createInstance(testCreateRequest({ shard: "b" }));
    await provider.createInstance(testCreateRequest({ clusterId: "other", shard: "a" }));
    const list = await provider.listInstances({ clusterId: "test-cluster", shard: "a" });
    assert.equal(list.length, 2);
    assert.ok(list.every((i) => i.shard === "a" && i.clusterId === "test-cluster"));
  });

  it("injects create failures: failNextCreates(n) then success; setCreateError until cleared", async () => {
    const { provider } = setup();
    provider.failNextCreates(2);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(provider.createInstance(testCreateRequest()), (err: unknown) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(err.transient, true);
        assert.equal(err.provider, "fake");
        return true;
      });
    }
    await provider.createInstance(testCreateRequest());
    const boom = new Error("quota exceeded");
    provider.setCreateError(boom);
    await assert.rejects(provider.createInstance(testCreateRequest()), boom);
    provider.setCreateError(undefined);
    await provider.createInstance(testCreateRequest());
    const c = provider.counters();
    assert.equal(c.createCalls, 5);
    assert.equal(c.creates, 2);
    assert.equal(c.createFailures, 3);
    assert.equal(provider.instanceCount(), 2);
  });

  it("rejects a second create of the same instance ID (a double create is a bug)", async () => {
    const { provider } = setup();
    const req = testCreateRequest();
    await provider.createInstance(req);
    await assert.rejects(provider.createInstance(req), { code: "already_exists" });
  });

  it("injects delete and status errors", async () => {
    const { provider } = setup();
    const req = testCreateRequest();
    const { providerInstanceId } = await provider.createInstance(req);
    const err = new Error("api down");
    provider.setDeleteError(err);
    await assert.rejects(provider.deleteInstance(req.instanceId, providerInstanceId), err);
    provider.setDeleteError(undefined);
    provider.setStatusError(err);
    await assert.rejects(provider.getInstanceStatus(req.instanceId, providerInstanceId), err);
    await assert.rejects(provider.listInstances({ clusterId: "x", shard: "y" }), err);
    provider.setStatusError(undefined);
    assert.equal(await provider.deleteInstance(req.instanceId, providerInstanceId), "deleted");
  });

  it("pins a status (a crashed VM) and removes instances behind nstance's back", async () => {
    const { provider, advance } = setup({ createDelayMs: 0 });
    const a = testCreateRequest();
    const b = testCreateRequest();
    const ra = await provider.createInstance(a);
    const rb = await provider.createInstance(b);
    provider.setInstanceStatus(a.instanceId, "stopped");
    advance(10);
    assert.equal(
      (await provider.getInstanceStatus(a.instanceId, ra.providerInstanceId))?.status,
      "stopped",
    );
    assert.equal(provider.removeInstance(rb.providerInstanceId), true);
    assert.equal(await provider.getInstanceStatus(b.instanceId, rb.providerInstanceId), undefined);
    assert.equal(await provider.deleteInstance(b.instanceId, rb.providerInstanceId), "not_found");
    // Deleting the stopped one unpins it and runs the normal delete sequence.
    assert.equal(await provider.deleteInstance(a.instanceId, ra.providerInstanceId), "deleted");
    assert.equal(
      (await provider.getInstanceStatus(a.instanceId, ra.providerInstanceId))?.status,
      "deleting",
    );
    assert.throws(() => provider.setInstanceStatus("nope", "running"), { code: "not_found" });
  });

  it("switches subnet capacity per subnet and by default", async () => {
    const { provider } = setup();
    assert.equal(await provider.checkSubnetCapacity("subnet-1"), true);
    provider.setSubnetCapacity("subnet-1", false);
    assert.equal(await provider.checkSubnetCapacity("subnet-1"), false);
    assert.equal(await provider.checkSubnetCapacity("subnet-2"), true);
    provider.setSubnetCapacity("*", false);
    assert.equal(await provider.checkSubnetCapacity("subnet-2"), false);
    assert.equal(provider.counters().capacityChecks, 4);
  });

  it("keeps LB membership: registered is healthy; delete removes it", async () => {
    const { provider } = setup();
    const req = testCreateRequest();
    const { providerInstanceId } = await provider.createInstance(req);
    const lb = { providerInstanceId, lbName: "public", lbConfig: testLbConfig() };
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    await provider.registerWithLb(lb);
    assert.equal(await provider.getLbTargetState(lb), "healthy");
    assert.deepEqual(await provider.listLbInstances({ lbName: "public", lbConfig: lb.lbConfig }), [
      providerInstanceId,
    ]);
    await provider.deregisterFromLb(lb);
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    await provider.registerWithLb(lb);
    await provider.deleteInstance(req.instanceId, providerInstanceId);
    assert.deepEqual(provider.lbMembers("public"), []);
  });

  it("moves the leader network", async () => {
    const { provider } = setup();
    await provider.assignLeaderNetwork("i-1", { interfaceId: "eni-1" });
    assert.equal(provider.leaderNetworkHolder(), "i-1");
    await provider.releaseLeaderNetwork("i-2", { interfaceId: "eni-1" });
    assert.equal(provider.leaderNetworkHolder(), "i-1");
    await provider.releaseLeaderNetwork("i-1", { interfaceId: "eni-1" });
    assert.equal(provider.leaderNetworkHolder(), undefined);
  });

  it("adds call latency and honours abort", async () => {
    const provider = new FakeProvider({ callLatencyMs: 20 });
    const t0 = performance.now();
    await provider.checkSubnetCapacity("s");
    assert.ok(performance.now() - t0 >= 15);
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assert.rejects(provider.createInstance(testCreateRequest(), ac.signal), /stop/);
    assert.equal(provider.instanceCount(), 0);
  });

  it("calls onCreate with the request and result", async () => {
    const seen: string[] = [];
    const provider = new FakeProvider({
      onCreate: (req, res) => seen.push(`${req.instanceId}=${res.providerInstanceId}`),
    });
    const req = testCreateRequest();
    const res = await provider.createInstance(req);
    assert.deepEqual(seen, [`${req.instanceId}=${res.providerInstanceId}`]);
  });

  it("scales to 20,000 instances cheaply", async () => {
    const { provider, advance } = setup({ createDelayMs: 100, deleteDelayMs: 50 });
    const t0 = performance.now();
    const reqs = Array.from({ length: 20_000 }, (_, i) =>
      testCreateRequest({ group: `g${i % 100}` }),
    );
    const created = await Promise.all(reqs.map((r) => provider.createInstance(r)));
    advance(100);
    const list = await provider.listInstances({ clusterId: "test-cluster", shard: "shard-a" });
    assert.equal(list.length, 20_000);
    assert.ok(list.every((i) => i.status === "running"));
    await Promise.all(
      created
        .slice(0, 10_000)
        .map((c) => provider.deleteInstance(c.instanceId, c.providerInstanceId)),
    );
    advance(50);
    assert.equal(provider.instanceCount(), 10_000);
    const elapsedMs = performance.now() - t0;
    // Generous bound: this takes well under a second; a timer per instance would not.
    assert.ok(elapsedMs < 20_000, `took ${elapsedMs} ms`);
  });
});
