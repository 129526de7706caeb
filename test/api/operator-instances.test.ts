// SPDX-License-Identifier: Apache-2.0
// The instance RPCs of the Operator API over real mTLS, wired to a real reconciler (shard
// management over the fake provider): on-demand CreateInstance and DeleteInstance, RegisterAgent
// telling the reconciler, drains of a deleted group on WatchInstances (acknowledged → deleted at
// once, unacknowledged → deleted at the deadline), WatchErrors, and how the streams end.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ClientReadableStream, Metadata, status } from "@grpc/grpc-js";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { TermFence } from "../../src/election/term-fence.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import type { Empty } from "../../src/protocol/gen/google/protobuf/empty.js";
import type {
  CreateInstanceResponse,
  DeleteInstanceResponse,
  ErrorEvent,
  InstanceConfig,
  InstanceEvent,
  ListInstancesResponse,
  OperatorServiceClient,
  UpsertGroupResponse,
} from "../../src/protocol/gen/nstance/v1/operator.js";
import type {
  RegisterAgentResponse,
  RegistrationServiceClient,
} from "../../src/protocol/gen/nstance/v1/registration.js";
import { FakeProvider } from "../../src/providers/fake/fake-provider.js";
import { newInstanceId } from "../../src/providers/instance-id.js";
import { TenantEvents } from "../../src/reconcile/tenant-events.js";
import type { TermReconciler } from "../../src/server/api/api-context.js";
import {
  type ShardManagement,
  startShardManagement,
} from "../../src/server/instances/start-shard-management.js";
import { silentLogger } from "../../src/shared/logger.js";
import { TestTerm, waitFor } from "../reconcile/reconcile-fixture.js";
import {
  type ApiFixture,
  CLUSTER_ID,
  call,
  rejectsWithCode,
  SHARD,
  startApiFixture,
} from "./api-fixture.js";

/**
 * `default_drain_timeout`: a deleted group's instances drain this long. The acknowledgement must
 * arrive within it (it takes milliseconds), so it is generous.
 */
const DRAIN_MS = 5000;
const DRAIN_STEPS = new Set(["drain_notified", "drain_acked", "drain_timed_out", "deleted"]);

/** Events of one watch stream as they arrive, and how it ended. */
interface Watched<T> {
  stream: ClientReadableStream<T>;
  events: T[];
  end?: { code: number; details: string };
}

function watch<T>(stream: ClientReadableStream<T>): Watched<T> {
  const w: Watched<T> = { stream, events: [] };
  stream.on("data", (e: T) => w.events.push(e));
  stream.on("error", (err: { code: number; details: string }) => {
    w.end = { code: err.code, details: err.details };
  });
  return w;
}

const instanceConfig = (c: Partial<InstanceConfig>): InstanceConfig => ({
  group: "",
  template: "",
  instanceType: "",
  subnetPool: "",
  vars: {},
  ...c,
});

describe("Operator API instance RPCs with a reconciler", () => {
  let f: ApiFixture;
  let op: OperatorServiceClient;
  let otherOp: OperatorServiceClient;
  let reg: RegistrationServiceClient;
  let mgmt: ShardManagement;
  const term = new TestTerm();
  const drains = new TenantEvents<InstanceEvent>();
  const errors = new TenantEvents<ErrorEvent>();
  /** Each created instance's registration nonce, as the provider received it. */
  const nonces = new Map<string, string>();
  const provider = new FakeProvider({
    createDelayMs: 0,
    deleteDelayMs: 0,
    onCreate: (req) => nonces.set(req.instanceId, req.nonce),
  });
  let current: TermReconciler | undefined;

  const create = (c: Partial<InstanceConfig>, instanceId = "") =>
    call<CreateInstanceResponse>((m, o, cb) =>
      op.createInstance({ instanceId, config: instanceConfig(c) }, m, o, cb),
    );
  const del = (instanceId: string, client = op) =>
    call<DeleteInstanceResponse>((m, o, cb) => client.deleteInstance({ instanceId }, m, o, cb));
  const ack = (instanceId: string) =>
    call<Empty>((m, o, cb) => op.acknowledgeDrained({ instanceId }, m, o, cb));
  const upsertGroup = (key: string, size: number) =>
    call<UpsertGroupResponse>((m, o, cb) =>
      op.upsertGroup(
        {
          key,
          config: {
            template: "web",
            size,
            instanceType: "",
            subnetPool: "",
            vars: {},
            args: {},
          },
        },
        m,
        o,
        cb,
      ),
    );
  const register = (instanceId: string) =>
    call<RegisterAgentResponse>((m, o, cb) =>
      reg.registerAgent(
        {
          registrationNonceJwt: nonces.get(instanceId) ?? "",
          publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem),
          privateIpv4: "10.0.0.7",
          privateIpv6: "",
          hostname: `${instanceId}.local`,
        },
        m,
        o,
        cb,
      ),
    );
  /** Live managed instances of a group, oldest first. */
  const live = (group: string): string[] =>
    (
      f.db
        .prepare(
          "SELECT id FROM instances WHERE group_key = ? AND on_demand = 0 AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .all(group) as Array<{ id: string }>
    ).map((r) => r.id);
  const decisions = (id: string) => listInstanceDecisions(f.db, id).map((d) => d.decision);
  /** The drain decisions of an instance, in order (other decisions may fall between them). */
  const drainSteps = (id: string) => decisions(id).filter((d) => DRAIN_STEPS.has(d));

  before(async () => {
    f = await startApiFixture({
      configEdits: [
        [["shard", "infra", "provider"], "fake"],
        [["groups", "default", "web", "size"], 0],
        [["shard", "default_drain_timeout"], `${DRAIN_MS}ms`],
      ],
      ctx: { reconciler: () => current, drainNotifier: drains, errorNotifier: errors },
    });
    mgmt = await startShardManagement({
      term: term.term,
      signal: term.signal,
      fence: new TermFence({ source: term }),
      clusterId: CLUSTER_ID,
      shard: SHARD,
      prefix: `shard/${SHARD}/`,
      db: f.db,
      storage: f.storage,
      configStore: f.configStore,
      provider,
      identity: f.identity,
      advertise: { registration: "127.0.0.1:8992", agent: "127.0.0.1:8994" },
      logger: silentLogger,
      drainNotifier: drains,
      errorNotifier: errors,
      reconciler: { resyncIntervalMs: 1000, retry: { initialMs: 50, maxMs: 200 } },
      gc: false,
    });
    current = { term: term.term, signal: term.signal, reconciler: mgmt.reconciler };
    op = f.operator(await f.clientCert({ clientId: "opr-a", tenant: "default", role: "operator" }));
    otherOp = f.operator(
      await f.clientCert({ clientId: "opr-o", tenant: "other", role: "operator" }),
    );
    reg = f.registration();
  });
  after(async () => {
    await mgmt?.stop();
    await f?.close();
  });

  it("creates on-demand instances that the reconciler never counts or scales down", async () => {
    const res = await create({
      group: "web",
      instanceType: "t3.small",
      vars: { purpose: "debug" },
    });
    assert.match(res.instanceId, /^web[0-9a-z]{26}$/);
    assert.equal(res.status, "running");
    const row = getInstance(f.db, res.instanceId);
    assert.equal(row?.onDemand, true);
    assert.equal(row?.instanceType, "t3.small");
    assert.ok(
      provider.allInstances().some((i) => i.instanceId === res.instanceId),
      "the provider has the VM",
    );

    // Group web wants 0 instances: a managed one would be scaled down; an on-demand one stays.
    mgmt.reconciler.instanceChanged(res.instanceId);
    await mgmt.reconciler.whenIdle();
    assert.equal(getInstance(f.db, res.instanceId)?.deletedAt, undefined);
    const listed = await call<ListInstancesResponse>((m, o, cb) =>
      op.listInstances({ group: "web" }, m, o, cb),
    );
    const summary = listed.instances.find((i) => i.instanceId === res.instanceId);
    assert.equal(summary?.onDemand, true);
    assert.deepEqual(decisions(res.instanceId), ["create_requested", "created"]);
    assert.equal(listInstanceDecisions(f.db, res.instanceId)[0]?.reason, "on-demand");

    // A caller-chosen ID is used as given, and only once.
    const chosen = newInstanceId("web");
    assert.equal((await create({ group: "web" }, chosen)).instanceId, chosen);
    await rejectsWithCode(create({ group: "web" }, chosen), status.ALREADY_EXISTS);
  });

  it("refuses bad CreateInstance requests before anything is created", async () => {
    const before = provider.counters().createCalls;
    const cases: Array<[Promise<unknown>, status]> = [
      [create({}), status.INVALID_ARGUMENT],
      [create({ group: "nope" }), status.NOT_FOUND],
      [create({ group: "web", template: "other" }), status.INVALID_ARGUMENT],
      [create({ group: "web" }, "not-an-id"), status.INVALID_ARGUMENT],
      [create({ group: "web" }, newInstanceId("abc")), status.INVALID_ARGUMENT],
      [create({ group: "web", subnetPool: "missing" }), status.INVALID_ARGUMENT],
    ];
    for (const [p, code] of cases) await rejectsWithCode(p, code);
    // Another tenant does not see this tenant's groups.
    await rejectsWithCode(
      call((m, o, cb) =>
        otherOp.createInstance(
          { instanceId: "", config: instanceConfig({ group: "web" }) },
          m,
          o,
          cb,
        ),
      ),
      status.NOT_FOUND,
    );
    assert.equal(provider.counters().createCalls, before, "no provider call was made");
  });

  it("deletes an instance at once; a repeat or an unknown ID answers unknown", async () => {
    const { instanceId } = await create({ group: "web" });
    await rejectsWithCode(del(instanceId, otherOp), status.PERMISSION_DENIED);
    const vms = provider.instanceCount();
    assert.equal((await del(instanceId)).status, "deleted");
    assert.ok(getInstance(f.db, instanceId)?.deletedAt !== undefined);
    assert.equal(provider.instanceCount(), vms - 1);
    const history = listInstanceDecisions(f.db, instanceId);
    assert.equal(history.at(-1)?.decision, "deleted");
    assert.equal(history.at(-1)?.reason, "operator");
    assert.equal((await del(instanceId)).status, "unknown");
    assert.equal((await del(newInstanceId("web"))).status, "unknown");
  });

  it("drains a deleted group on WatchInstances: acked goes at once, the other at its deadline", async (t) => {
    const early = watch(op.watchInstances({}, new Metadata()));
    const others = watch(otherOp.watchInstances({}, new Metadata()));
    const streams: Array<Watched<InstanceEvent>> = [early, others];
    t.after(() => {
      for (const w of streams) w.stream.cancel();
    });
    await upsertGroup("batch", 2);
    await waitFor("2 batch instances", () => live("batch").length === 2);
    const [a, b] = live("batch") as [string, string];
    for (const id of [a, b]) {
      const res = await register(id);
      assert.ok(res.clientCertificatePem.length > 0);
      const registered = listInstanceDecisions(f.db, id).find((d) => d.decision === "registered");
      assert.equal(registered?.evidence.hostname, `${id}.local`, "the registration is recorded");
    }
    await mgmt.reconciler.whenIdle();

    await call<Empty>((m, o, cb) => op.deleteGroup({ key: "batch" }, m, o, cb));
    const pending = (w: Watched<InstanceEvent>) =>
      w.events.filter((e) => e.status === "pending_deletion");
    await waitFor("2 drain notices", () => pending(early).length >= 2);
    for (const e of pending(early)) {
      assert.equal(e.reason, "group-deleted");
      assert.equal(e.group, "batch");
      assert.equal(e.tenant, "default");
      assert.match(e.providerInstanceId, /^i-/);
      assert.equal(e.deleteAt!.getTime() - e.unhealthyAt!.getTime(), DRAIN_MS);
    }
    assert.deepEqual(new Set(pending(early).map((e) => e.instanceId)), new Set([a, b]));

    // A stream opened now starts with a snapshot of both drains.
    const late = watch(op.watchInstances({}, new Metadata()));
    streams.push(late);
    await waitFor("the snapshot", () => late.events.length >= 2);
    assert.deepEqual(new Set(late.events.map((e) => e.instanceId)), new Set([a, b]));
    assert.ok(late.events.every((e) => e.status === "pending_deletion"));

    await ack(a);
    await waitFor("a deleted", () => getInstance(f.db, a)?.deletedAt !== undefined);
    await ack(a); // a retried acknowledgement still succeeds
    const deadlineB = pending(early)
      .find((e) => e.instanceId === b)!
      .deleteAt!.getTime();
    await waitFor("b deleted", () => getInstance(f.db, b)?.deletedAt !== undefined);
    assert.ok(getInstance(f.db, b)!.deletedAt! >= deadlineB, "not before its deadline");
    await waitFor("2 deleted events", () =>
      [a, b].every((id) => early.events.some((e) => e.instanceId === id && e.status === "deleted")),
    );
    assert.deepEqual(drainSteps(a), ["drain_notified", "drain_acked", "deleted"]);
    assert.deepEqual(drainSteps(b), ["drain_notified", "drain_timed_out", "deleted"]);
    assert.equal(others.events.length, 0, "another tenant sees none of it");

    // Acknowledgements of anything else are refused.
    await rejectsWithCode(ack(b), status.NOT_FOUND);
    await rejectsWithCode(ack(newInstanceId("web")), status.NOT_FOUND);
    const { instanceId: running } = await create({ group: "web" });
    await rejectsWithCode(ack(running), status.FAILED_PRECONDITION);
  });

  it("streams the tenant's create failures on WatchErrors", async (t) => {
    const subscribed = errors.subscriberCount;
    const w = watch(op.watchErrors({}, new Metadata()));
    t.after(() => w.stream.cancel());
    await waitFor("the stream subscribed", () => errors.subscriberCount > subscribed);
    provider.failNextCreates(1);
    await upsertGroup("flaky", 1);
    await waitFor("an error event", () => w.events.length > 0);
    const e = w.events[0]!;
    assert.equal(e.group, "flaky");
    assert.match(e.instanceId, /^web/);
    assert.match(e.error, /injected failure/);
    // The reconciler retries; the group still comes up.
    await waitFor("the retried create", () => live("flaky").length === 1);
    await call<Empty>((m, o, cb) => op.deleteGroup({ key: "flaky" }, m, o, cb));
  });

  it("refuses watches on a standby, unsubscribes on cancel, and ends them when the term ends", async () => {
    f.leadership.leading = false;
    const refused = watch(op.watchInstances({}, new Metadata()));
    await waitFor("the refusal", () => refused.end !== undefined);
    assert.equal(refused.end?.code, status.FAILED_PRECONDITION);
    assert.match(refused.end?.details ?? "", /the leader is server-1/);
    f.leadership.leading = true;

    await waitFor("earlier streams unsubscribed", () => drains.subscriberCount === 0);
    const cancelled = watch(op.watchInstances({}, new Metadata()));
    await waitFor("subscribed", () => drains.subscriberCount === 1);
    cancelled.stream.cancel();
    await waitFor("unsubscribed after cancel", () => drains.subscriberCount === 0);

    const instances = watch(op.watchInstances({}, new Metadata()));
    const errs = watch(op.watchErrors({}, new Metadata()));
    await waitFor(
      "both subscribed",
      () => drains.subscriberCount === 1 && errors.subscriberCount === 1,
    );
    term.advance();
    await waitFor("both ended", () => instances.end !== undefined && errs.end !== undefined);
    for (const w of [instances, errs]) {
      assert.equal(w.end?.code, status.UNAVAILABLE);
      assert.match(w.end?.details ?? "", /leadership term 1 .*ended/);
    }
    assert.equal(drains.subscriberCount + errors.subscriberCount, 0);
    // Until the next term's reconciler runs, instance calls ask the client to retry.
    await rejectsWithCode(create({ group: "web" }), status.UNAVAILABLE);
  });
});
