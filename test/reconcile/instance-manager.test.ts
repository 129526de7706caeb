// SPDX-License-Identifier: Apache-2.0
/** InstanceManager: the create and delete sequences, their crash-safe order and term fencing. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { verifyNonceJwt } from "../../src/pki/nonce-jwt.js";
import { newInstanceId } from "../../src/providers/instance-id.js";
import type { CreateInstanceRequest } from "../../src/providers/provider.js";
import { testLbConfig } from "../../src/providers/testing.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { InstanceManager } from "../../src/server/instances/instance-manager.js";
import { silentLogger } from "../../src/shared/logger.js";
import {
  CLUSTER_ID,
  PREFIX,
  type ReconcileFixture,
  type ReconcileFixtureOptions,
  SHARD,
  startReconcileFixture,
} from "./reconcile-fixture.js";

async function setup(
  opts: ReconcileFixtureOptions = {},
): Promise<{ f: ReconcileFixture; im: InstanceManager }> {
  const f = await startReconcileFixture({ start: false, registerAfterMs: undefined, ...opts });
  const im = new InstanceManager({
    clusterId: CLUSTER_ID,
    shard: SHARD,
    prefix: PREFIX,
    db: f.db,
    storage: f.storage,
    provider: f.provider,
    identity: f.identity,
    groups: f.configStore,
    fence: f.fence,
    advertise: { registration: "10.0.0.5:8992", agent: "10.0.0.5:8994", operator: "10.0.0.5:8993" },
    logger: silentLogger,
  });
  return { f, im };
}

async function record(
  f: ReconcileFixture,
  id: string,
): Promise<Record<string, unknown> | undefined> {
  const obj = await f.storage.get(instanceRecordKey(PREFIX, "default", id));
  return obj && (JSON.parse(obj.body.toString()) as Record<string, unknown>);
}

describe("InstanceManager", () => {
  it("writes row and record before the provider call, with a nonce, userdata and args for the instance", async () => {
    const { f, im } = await setup({
      configEdits: [
        [
          ["templates", "web", "userdata"],
          {
            content:
              "#!/bin/sh\nnstance-agent --id {{ .Instance.ID }} --server {{ .Server.AgentAddr }}\n",
          },
        ],
        [
          ["templates", "web", "args"],
          { Name: "{{ .Instance.ID }}-{{ .Vars.listen_port }}", Count: 1 },
        ],
      ],
    });
    try {
      const seen: Array<{
        req: CreateInstanceRequest;
        rec?: Record<string, unknown>;
        rowProviderId?: string;
      }> = [];
      const create = f.provider.createInstance.bind(f.provider);
      f.provider.createInstance = async (req, signal) => {
        const rec = await record(f, req.instanceId);
        seen.push({
          req,
          rec,
          rowProviderId: getInstance(f.db, req.instanceId)?.providerId ?? "none",
        });
        return create(req, signal);
      };
      const created = await im.create("default", "web", { reason: "scale-up" }, f.term.term);
      const id = created.instanceId;
      assert.match(id, /^web[0-9a-z]{26}$/);
      assert.equal(seen.length, 1);
      const { req, rec, rowProviderId } = seen[0]!;
      assert.equal(rec?.status, "pending", "the record exists before the provider is called");
      assert.equal(rec?.provider_instance_id, "");
      assert.equal(rec?.registration_jwt, req.nonce);
      assert.equal(rowProviderId, "none", "the row exists, without a provider ID yet");
      assert.equal(req.userData, `#!/bin/sh\nnstance-agent --id ${id} --server 10.0.0.5:8994\n`);
      assert.deepEqual(req.args, { Name: `${id}-8080`, Count: 1 });
      assert.deepEqual(req.agentEnv, {
        NSTANCE_SERVER_REGISTRATION_ADDR: "10.0.0.5:8992",
        NSTANCE_SERVER_AGENT_ADDR: "10.0.0.5:8994",
        // examples/local.jsonc: health_check_interval 10s.
        NSTANCE_METRICS_INTERVAL: "10000ms",
      });
      assert.equal(req.caCertPem, f.identity.ca.certPem);
      assert.equal(req.subnetId, "loopback");

      const group = f.group("web")!;
      const claims = await verifyNonceJwt(req.nonce, {
        verifyKey: f.identity.nonceVerifyKey,
        kind: "agent",
        clusterId: CLUSTER_ID,
        shard: SHARD,
      });
      assert.equal(claims.subject, id);
      assert.equal(claims.tenant, "default");
      assert.equal(claims.group, "web");
      assert.equal(claims.onDemand, false);
      assert.equal(claims.configHash, group.runtimeHash);
      assert.equal(
        claims.expiresAt.getTime() - claims.issuedAt.getTime(),
        30_000,
        "registration_timeout",
      );

      const row = getInstance(f.db, id)!;
      assert.equal(row.providerId, created.providerInstanceId);
      assert.equal(row.nonce, req.nonce);
      assert.equal(row.infraConfigHash, group.infraHash);
      assert.equal((await record(f, id))?.provider_instance_id, created.providerInstanceId);
    } finally {
      await f.close();
    }
  });

  it("picks the first subnet of the pool with capacity", async () => {
    const { f, im } = await setup({
      configEdits: [[["shard", "subnet_pools"], { default: ["s1", "s2", "s3"] }]],
    });
    try {
      f.provider.setSubnetCapacity("s1", false);
      const { instanceId } = await im.create("default", "web", { reason: "scale-up" }, f.term.term);
      assert.equal(getInstance(f.db, instanceId)?.subnetId, "s2");
      f.provider.setSubnetCapacity("*", false);
      await assert.rejects(im.create("default", "web", { reason: "scale-up" }, f.term.term), {
        code: "resource_exhausted",
        name: "NoSubnetCapacityError",
      });
    } finally {
      await f.close();
    }
  });

  it("abandons the row and marks the record when the provider create fails", async () => {
    const { f, im } = await setup();
    try {
      f.provider.failNextCreates(1);
      const id = newInstanceId("web");
      await assert.rejects(
        im.create("default", "web", { reason: "scale-up", instanceId: id }, f.term.term),
        /injected failure/,
      );
      assert.ok(getInstance(f.db, id)?.deletedAt !== undefined);
      assert.equal((await record(f, id))?.status, "deleting");
      assert.deepEqual(
        listInstanceDecisions(f.db, id).map((d) => d.decision),
        ["create_requested", "create_failed"],
      );
    } finally {
      await f.close();
    }
  });

  it("creates on-demand instances with overrides and checks requested IDs", async () => {
    const { f, im } = await setup();
    try {
      const id = newInstanceId("web");
      await im.create(
        "default",
        "web",
        {
          reason: "on-demand",
          onDemand: true,
          instanceId: id,
          overrides: { instanceType: "huge", vars: { a: "b" } },
        },
        f.term.term,
      );
      const row = getInstance(f.db, id)!;
      assert.equal(row.onDemand, true);
      assert.equal(row.instanceType, "huge");
      const rec = await record(f, id);
      assert.deepEqual((rec?.config as { vars: unknown } | undefined)?.vars, {
        environment: "development",
        listen_port: "8080",
        a: "b",
      });
      await assert.rejects(
        im.create("default", "web", { reason: "on-demand", instanceId: "bogus" }, f.term.term),
        { code: "invalid_argument" },
      );
      await assert.rejects(
        im.create(
          "default",
          "web",
          { reason: "on-demand", instanceId: newInstanceId("abc") },
          f.term.term,
        ),
        { code: "invalid_argument", message: /template kind web/ },
      );
      await assert.rejects(im.create("default", "nope", { reason: "scale-up" }, f.term.term), {
        code: "not_found",
      });
    } finally {
      await f.close();
    }
  });

  it("deletes: load balancers first, then the provider, then record and row", async () => {
    const { f, im } = await setup({
      configEdits: [
        [["load_balancers"], { public: { provider: "fake" } }],
        [["groups", "default", "web", "load_balancers"], ["public"]],
      ],
    });
    try {
      const { instanceId: id, providerInstanceId } = await im.create(
        "default",
        "web",
        { reason: "scale-up" },
        f.term.term,
      );
      await f.provider.registerWithLb({
        providerInstanceId,
        lbName: "public",
        lbConfig: testLbConfig(),
      });
      const calls: string[] = [];
      const dereg = f.provider.deregisterFromLb.bind(f.provider);
      const del = f.provider.deleteInstance.bind(f.provider);
      f.provider.deregisterFromLb = async (req, s) => {
        calls.push(`deregister ${req.lbName} (members ${f.provider.lbMembers("public").length})`);
        return dereg(req, s);
      };
      f.provider.deleteInstance = async (i, p, s) => {
        calls.push(`delete (members ${f.provider.lbMembers("public").length})`);
        return del(i, p, s);
      };
      assert.equal(await im.delete(id, { reason: "scale-down" }, f.term.term), "deleted");
      assert.deepEqual(calls, ["deregister public (members 1)", "delete (members 0)"]);
      const rec = await record(f, id);
      assert.equal(rec?.status, "deleting");
      assert.equal(rec?.delete_reason, "scale-down");
      assert.ok(getInstance(f.db, id)?.deletedAt !== undefined);
      const last = listInstanceDecisions(f.db, id).at(-1)!;
      assert.equal(last.decision, "deleted");
      assert.deepEqual(last.evidence.load_balancers, ["public"]);
      assert.equal(last.evidence.provider_outcome, "deleted");
      assert.equal(await im.delete(id, { reason: "scale-down" }, f.term.term), "unknown");
      assert.equal(await im.delete("web-unknown", { reason: "x" }, f.term.term), "unknown");
    } finally {
      await f.close();
    }
  });

  it("calls no provider mutation once the term has moved on", async () => {
    const { f, im } = await setup();
    try {
      const { instanceId } = await im.create("default", "web", { reason: "scale-up" }, f.term.term);
      const term = f.term.term;
      f.term.revoke();
      await assert.rejects(im.create("default", "web", { reason: "scale-up" }, term), {
        name: "StaleTermError",
      });
      await assert.rejects(im.delete(instanceId, { reason: "scale-down" }, term), {
        name: "StaleTermError",
      });
      const c = f.provider.counters();
      assert.equal(c.createCalls, 1);
      assert.equal(c.deleteCalls, 0);
      assert.equal(getInstance(f.db, instanceId)?.deletedAt, undefined, "nothing marked deleted");
    } finally {
      await f.close();
    }
  });
});
