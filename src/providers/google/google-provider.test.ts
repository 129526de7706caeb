// SPDX-License-Identifier: Apache-2.0
/**
 * The google provider against a local HTTP server serving canned Compute Engine v1 responses: the
 * requests (paths, queries, bodies, auth) and the response mapping are real; the cloud is not.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { ProviderError } from "../provider.js";
import {
  type CannedReply,
  type CannedRequest,
  startCannedServer,
  testCreateRequest,
  testLbConfig,
} from "../testing.js";
import { GoogleProvider, mapGceStatus } from "./google-provider.js";
import { buildInstanceResource, sanitizeLabel, subnetworkPath } from "./instance-resource.js";

/** The parts of the insert body the tests read. */
interface InstanceBody {
  name: string;
  machineType: string;
  labels: Record<string, string>;
  networkInterfaces: unknown;
  disks: Array<{ initializeParams: unknown }>;
  metadata: { items: Array<{ key: string; value: string }> };
  tags?: unknown;
  scheduling?: unknown;
  serviceAccounts: Array<{ email: string }>;
}

const ZONE_PATH = "/compute/v1/projects/proj-1/zones/us-central1-a";

let respond: (req: CannedRequest) => CannedReply = () => ({ status: 500 });
let server: Awaited<ReturnType<typeof startCannedServer>>;
let provider: GoogleProvider;

function instanceJson(name: string, over: Record<string, unknown> = {}) {
  return {
    name,
    status: "RUNNING",
    machineType: `https://www.googleapis.com/compute/v1/projects/proj-1/zones/us-central1-a/machineTypes/e2-small`,
    zone: "https://www.googleapis.com/compute/v1/projects/proj-1/zones/us-central1-a",
    creationTimestamp: "2026-01-02T03:04:05.000-08:00",
    labels: {
      "nstance-instance-id": name,
      "nstance-cluster-id": "prod",
      "nstance-shard": "s1",
      "nstance-group": "web",
    },
    networkInterfaces: [
      {
        name: "nic0",
        subnetwork:
          "https://www.googleapis.com/compute/v1/projects/proj-1/regions/us-central1/subnetworks/workers",
        networkIP: "10.1.0.7",
        fingerprint: "fp-1",
        aliasIpRanges: [],
      },
    ],
    ...over,
  };
}

describe("GoogleProvider", () => {
  before(async () => {
    server = await startCannedServer((req) => respond(req));
    provider = new GoogleProvider({
      project: "proj-1",
      region: "us-central1",
      zone: "us-central1-a",
      baseUrl: `${server.url}/compute/v1/`,
      tokenSource: async () => "tok-1",
      listPageSize: 2,
    });
  });
  after(async () => {
    await provider.close();
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });

  it("inserts, waits for the operation, and reads the instance back", async () => {
    const req = testCreateRequest({
      instanceType: "e2-small",
      subnetId: "workers",
      tags: { Team: "Infra" },
      args: {
        SourceImage: "projects/cos-cloud/global/images/family/cos-stable",
        ServiceAccount: "vm@proj-1.iam.gserviceaccount.com",
        NetworkTags: ["nstance"],
        Preemptible: true,
        Labels: { env: "prod", "nstance-group": "evil" },
      },
    });
    let waits = 0;
    respond = (r) => {
      if (r.method === "POST" && r.path === `${ZONE_PATH}/instances`)
        return { body: { name: "op-1", status: "PENDING" } };
      if (r.method === "POST" && r.path === `${ZONE_PATH}/operations/op-1/wait`) {
        waits++;
        return { body: { name: "op-1", status: waits < 2 ? "RUNNING" : "DONE" } };
      }
      if (r.method === "GET" && r.path === `${ZONE_PATH}/instances/${req.instanceId}`) {
        return { body: instanceJson(req.instanceId, { status: "STAGING" }) };
      }
      return { status: 404, body: { error: { message: "unexpected" } } };
    };
    const res = await provider.createInstance(req);
    assert.deepEqual(res, {
      instanceId: req.instanceId,
      providerInstanceId: req.instanceId,
      status: "pending",
      privateIpv4: "10.1.0.7",
      privateIpv6: undefined,
      hostname: req.instanceId,
      launchedAt: Date.parse("2026-01-02T11:04:05.000Z"),
    });
    assert.deepEqual(
      server.requests.map((r) => `${r.method} ${r.path.replace(ZONE_PATH, "")}`),
      [
        "POST /instances",
        "POST /operations/op-1/wait",
        "POST /operations/op-1/wait",
        `GET /instances/${req.instanceId}`,
      ],
    );
    const insert = server.requests[0]!;
    assert.equal(insert.headers.authorization, "Bearer tok-1");
    const body = insert.body as unknown as InstanceBody;
    assert.equal(body.name, req.instanceId);
    assert.equal(body.machineType, "zones/us-central1-a/machineTypes/e2-small");
    assert.deepEqual(body.networkInterfaces, [
      { subnetwork: "projects/proj-1/regions/us-central1/subnetworks/workers" },
    ]);
    assert.deepEqual(body.disks[0]!.initializeParams, {
      sourceImage: "projects/cos-cloud/global/images/family/cos-stable",
      diskSizeGb: "30",
    });
    assert.deepEqual(body.metadata, { items: [{ key: "startup-script", value: req.userData }] });
    assert.deepEqual(body.labels, {
      team: "infra",
      env: "prod",
      "nstance-instance-id": req.instanceId,
      "nstance-managed": "true",
      "nstance-cluster-id": "test-cluster",
      "nstance-shard": "shard-a",
      "nstance-tenant": "default",
      "nstance-group": "web",
      "nstance-template": "test",
      "nstance-instance-kind": "tst",
    });
    assert.deepEqual(body.tags, { items: ["nstance"] });
    assert.deepEqual(body.scheduling, { preemptible: true });
    assert.equal(body.serviceAccounts[0]!.email, "vm@proj-1.iam.gserviceaccount.com");
  });

  it("fails a create whose operation fails, marking capacity errors transient", async () => {
    const req = testCreateRequest();
    respond = (r) =>
      r.path.endsWith("/instances")
        ? { body: { name: "op-2", status: "RUNNING" } }
        : {
            body: {
              name: "op-2",
              status: "DONE",
              error: {
                errors: [{ code: "ZONE_RESOURCE_POOL_EXHAUSTED", message: "no e2-small left" }],
              },
            },
          };
    await assert.rejects(provider.createInstance(req), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.transient, true);
      assert.match(err.message, /ZONE_RESOURCE_POOL_EXHAUSTED: no e2-small left/);
      return true;
    });
  });

  it("adopts an instance a lost response already created (409), but only if labelled as it", async () => {
    const req = testCreateRequest();
    let label = req.instanceId;
    respond = (r) =>
      r.method === "POST"
        ? {
            status: 409,
            body: { error: { message: "already exists", errors: [{ reason: "alreadyExists" }] } },
          }
        : { body: instanceJson(req.instanceId, { labels: { "nstance-instance-id": label } }) };
    assert.equal((await provider.createInstance(req)).status, "running");
    label = "tstsomeoneelse";
    await assert.rejects(provider.createInstance(req), { code: "already_exists" });
  });

  it("rejects unknown args without calling the API", async () => {
    respond = () => ({ status: 500 });
    await assert.rejects(
      provider.createInstance(testCreateRequest({ args: { ImageId: "ami-1" } })),
      { code: "invalid_argument" },
    );
    assert.equal(server.requests.length, 0);
  });

  it("deletes, tolerating not found", async () => {
    let found = true;
    respond = (r) => {
      assert.equal(r.method, "DELETE");
      return found
        ? { body: { name: "op-3", status: "RUNNING" } }
        : { status: 404, body: { error: { message: "gone" } } };
    };
    assert.equal(await provider.deleteInstance("tsta", "tsta"), "deleted");
    assert.equal(server.requests[0]!.path, `${ZONE_PATH}/instances/tsta`);
    found = false;
    assert.equal(await provider.deleteInstance("tsta", "tsta"), "not_found");
  });

  it("gets a status; 404 and foreign labels are undefined", async () => {
    let reply: CannedReply = { body: instanceJson("tsta", { status: "TERMINATED" }) };
    respond = () => reply;
    const st = await provider.getInstanceStatus("tsta", "tsta");
    assert.equal(st?.status, "stopped");
    assert.equal(st?.instanceType, "e2-small");
    assert.equal(st?.zone, "us-central1-a");
    assert.equal(st?.clusterId, "prod");
    assert.equal(st?.group, "web");
    assert.equal(await provider.getInstanceStatus("tstb", "tsta"), undefined);
    reply = { status: 404, body: { error: { message: "not found" } } };
    assert.equal(await provider.getInstanceStatus("tsta", "tsta"), undefined);
    reply = { status: 503, body: { error: { message: "backend error" } } };
    await assert.rejects(provider.getInstanceStatus("tsta", "tsta"), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.transient, true);
      return true;
    });
    reply = {
      status: 403,
      body: { error: { message: "denied", errors: [{ reason: "forbidden" }] } },
    };
    await assert.rejects(provider.getInstanceStatus("tsta", "tsta"), {
      code: "permission_denied",
      transient: false,
    });
  });

  it("lists all pages of the aggregated list with label filters", async () => {
    respond = (r) => {
      assert.equal(r.path, "/compute/v1/projects/proj-1/aggregated/instances");
      return r.query.get("pageToken") === "p2"
        ? { body: { items: { "zones/us-central1-b": { instances: [instanceJson("tstc")] } } } }
        : {
            body: {
              items: {
                "zones/us-central1-a": {
                  instances: [instanceJson("tsta"), instanceJson("tstb", { status: "STOPPING" })],
                },
                "zones/us-central1-f": { warning: { code: "NO_RESULTS_ON_PAGE" } },
              },
              nextPageToken: "p2",
            },
          };
    };
    const list = await provider.listInstances({ clusterId: "Prod", shard: "s1" });
    assert.deepEqual(
      list.map((i) => [i.instanceId, i.status]),
      [
        ["tsta", "running"],
        ["tstb", "stopping"],
        ["tstc", "running"],
      ],
    );
    assert.equal(
      server.requests[0]!.query.get("filter"),
      '(labels.nstance-managed = "true") (labels.nstance-cluster-id = "prod") (labels.nstance-shard = "s1")',
    );
    assert.equal(server.requests[0]!.query.get("maxResults"), "2");
    assert.equal(server.requests[1]!.query.get("pageToken"), "p2");
  });

  it("adds and removes the leader alias IP on nic0 with the fingerprint", async () => {
    let aliases: Array<{ ipCidrRange: string }> = [{ ipCidrRange: "10.9.0.0/24" }];
    respond = (r) => {
      if (r.method === "GET")
        return {
          body: instanceJson("tsta", {
            networkInterfaces: [{ name: "nic0", fingerprint: "fp-7", aliasIpRanges: aliases }],
          }),
        };
      if (r.method === "PATCH") {
        aliases = (r.body as { aliasIpRanges: typeof aliases }).aliasIpRanges;
        return { body: { name: "op-9", status: "DONE" } };
      }
      return { status: 404 };
    };
    await provider.assignLeaderNetwork("tsta", { ip: "10.1.0.100" });
    const patch = server.requests.find((r) => r.method === "PATCH")!;
    assert.equal(patch.path, `${ZONE_PATH}/instances/tsta/updateNetworkInterface`);
    assert.equal(patch.query.get("networkInterface"), "nic0");
    assert.deepEqual(patch.body, {
      fingerprint: "fp-7",
      aliasIpRanges: [{ ipCidrRange: "10.9.0.0/24" }, { ipCidrRange: "10.1.0.100/32" }],
    });
    server.requests.length = 0;
    await provider.assignLeaderNetwork("tsta", { ip: "10.1.0.100" });
    assert.deepEqual(
      server.requests.map((r) => r.method),
      ["GET"],
      "already assigned: no change",
    );
    await provider.releaseLeaderNetwork("tsta", { ip: "10.1.0.100" });
    assert.deepEqual(aliases, [{ ipCidrRange: "10.9.0.0/24" }]);
    await assert.rejects(provider.assignLeaderNetwork("tsta", { ip: "fd00::1" }), {
      code: "invalid_argument",
    });
  });

  it("attaches to the NEG of the instance's subnet and reads endpoint health", async () => {
    let healths: Array<{ healthState: string }> | undefined;
    let attached = false;
    respond = (r) => {
      if (r.method === "GET" && r.path.endsWith("/instances/tsta"))
        return { body: instanceJson("tsta") };
      if (r.method === "GET" && r.path.endsWith("/networkEndpointGroups/neg-other")) {
        return {
          body: {
            networkEndpointType: "GCE_VM_IP",
            subnetwork: "projects/proj-1/regions/us-central1/subnetworks/other",
          },
        };
      }
      if (r.method === "GET" && r.path.endsWith("/networkEndpointGroups/neg-workers")) {
        return {
          body: {
            networkEndpointType: "GCE_VM_IP",
            subnetwork:
              "https://www.googleapis.com/compute/v1/projects/proj-1/regions/us-central1/subnetworks/workers",
          },
        };
      }
      if (r.path.endsWith("/attachNetworkEndpoints")) {
        attached = true;
        return { body: { name: "op-a", status: "DONE" } };
      }
      if (r.path.endsWith("/detachNetworkEndpoints")) {
        attached = false;
        return { body: { name: "op-d", status: "DONE" } };
      }
      if (r.path.endsWith("/listNetworkEndpoints")) {
        return {
          body: {
            items: attached
              ? [
                  {
                    networkEndpoint: {
                      instance:
                        "https://www.googleapis.com/compute/v1/projects/proj-1/zones/us-central1-a/instances/tsta",
                      ipAddress: "10.1.0.7",
                    },
                    healths,
                  },
                ]
              : [],
          },
        };
      }
      return { status: 404 };
    };
    const lb = {
      providerInstanceId: "tsta",
      lbName: "public",
      lbConfig: testLbConfig({
        provider: "google",
        networkEndpointGroups: ["neg-other", "neg-workers"],
      }),
    };
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    await provider.registerWithLb(lb);
    const attach = server.requests.find((r) => r.path.endsWith("/attachNetworkEndpoints"))!;
    assert.equal(
      attach.path,
      `${ZONE_PATH}/networkEndpointGroups/neg-workers/attachNetworkEndpoints`,
    );
    assert.deepEqual(attach.body, {
      networkEndpoints: [{ instance: "tsta", ipAddress: "10.1.0.7" }],
    });
    healths = undefined;
    assert.equal(await provider.getLbTargetState(lb), "registered");
    healths = [{ healthState: "HEALTHY" }, { healthState: "HEALTHY" }];
    assert.equal(await provider.getLbTargetState(lb), "healthy");
    healths = [{ healthState: "HEALTHY" }, { healthState: "DRAINING" }];
    assert.equal(await provider.getLbTargetState(lb), "draining");
    assert.deepEqual(await provider.listLbInstances({ lbName: "public", lbConfig: lb.lbConfig }), [
      "tsta",
    ]);
    await provider.deregisterFromLb(lb);
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
  });

  it("reports network failures as transient ProviderErrors", async () => {
    const broken = new GoogleProvider({
      project: "p",
      region: "r",
      zone: "z",
      baseUrl: "http://127.0.0.1:1/compute/v1/",
      tokenSource: async () => "t",
    });
    await assert.rejects(broken.getInstanceStatus("tsta", "tsta"), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.transient, true);
      assert.equal(err.provider, "google");
      return true;
    });
  });

  it("maps every Compute Engine status", () => {
    const table: Array<[string | undefined, string]> = [
      ["PROVISIONING", "pending"],
      ["STAGING", "pending"],
      ["RUNNING", "running"],
      ["STOPPING", "stopping"],
      ["STOPPED", "stopped"],
      ["TERMINATED", "stopped"],
      ["SUSPENDING", "suspending"],
      ["SUSPENDED", "suspended"],
      ["REPAIRING", "repairing"],
      ["WHATEVER", "unknown"],
      [undefined, "unknown"],
    ];
    for (const [s, want] of table) assert.equal(mapGceStatus(s), want);
  });

  it("sanitizes labels and expands subnet names", () => {
    assert.equal(sanitizeLabel("Prod.Cluster/1"), "prod_cluster_1");
    assert.equal(sanitizeLabel("9lives", true), "x9lives");
    assert.equal(sanitizeLabel("a".repeat(80)).length, 63);
    assert.equal(subnetworkPath("workers", "p", "r"), "projects/p/regions/r/subnetworks/workers");
    assert.equal(
      subnetworkPath(
        "https://www.googleapis.com/compute/v1/projects/p/regions/r/subnetworks/w",
        "x",
        "y",
      ),
      "projects/p/regions/r/subnetworks/w",
    );
    const body = buildInstanceResource(
      testCreateRequest({
        args: { DiskType: "pd-ssd", DiskSizeGb: 50, Metadata: { "enable-oslogin": "TRUE" } },
      }),
      {
        project: "p",
        region: "r",
        zone: "z",
        sourceImage: "img",
        diskSizeGb: 30,
        userDataKey: "user-data",
      },
    ) as unknown as InstanceBody;
    assert.deepEqual(body.disks[0]!.initializeParams, {
      sourceImage: "img",
      diskSizeGb: "50",
      diskType: "zones/z/diskTypes/pd-ssd",
    });
    assert.deepEqual(
      body.metadata.items.map((i: { key: string }) => i.key),
      ["user-data", "enable-oslogin"],
    );
    assert.throws(
      () =>
        buildInstanceResource(testCreateRequest({ args: { Preemptible: "yes" } }), {
          project: "p",
          region: "r",
          zone: "z",
          sourceImage: "i",
          diskSizeGb: 1,
          userDataKey: "k",
        }),
      /Preemptible must be a boolean/,
    );
  });
});
