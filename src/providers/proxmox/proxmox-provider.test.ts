// SPDX-License-Identifier: Apache-2.0
/**
 * The proxmox provider against a local HTTP server serving canned Proxmox VE `/api2/json`
 * responses: the request sequence, parameters and response mapping are real; Proxmox is not.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { newInstanceId } from "../instance-id.js";
import { ProviderError } from "../provider.js";
import {
  type CannedReply,
  type CannedRequest,
  startCannedServer,
  testCreateRequest,
  testLbConfig,
} from "../testing.js";
import { mapProxmoxStatus, ownershipTags, ProxmoxProvider } from "./proxmox-provider.js";

const GiB = 1024 ** 3;
const API = "/api2/json";

let server: Awaited<ReturnType<typeof startCannedServer>>;
let respond: (req: CannedRequest) => CannedReply = () => ({ status: 500 });
let provider: ProxmoxProvider;

const upid = (node: string, type: string, id: number) =>
  `UPID:${node}:000A1B2C:0B2C3D4E:6770F0A1:${type}:${id}:root@pam!nstance:`;

/** A small Proxmox: nodes, VMs, nextid and tasks, recording what was done. */
function fakeCluster(opts: {
  vms: Array<Record<string, unknown>>;
  failStart?: boolean;
  runningPolls?: number;
}) {
  const taken = new Set((opts.vms as Array<{ vmid: number }>).map((v) => v.vmid));
  taken.add(10_000); // nextid says 10000 is in use although /cluster/resources does not list it.
  let polls = opts.runningPolls ?? 0;
  return (r: CannedRequest): CannedReply => {
    const p = r.path.slice(API.length);
    if (r.method === "GET" && p === "/cluster/resources") {
      if (r.query.get("type") === "node") {
        return {
          body: {
            data: [
              {
                type: "node",
                node: "pve1",
                status: "online",
                cpu: 0.7,
                maxcpu: 16,
                mem: 48 * GiB,
                maxmem: 64 * GiB,
              },
              {
                type: "node",
                node: "pve2",
                status: "online",
                cpu: 0.2,
                maxcpu: 16,
                mem: 16 * GiB,
                maxmem: 64 * GiB,
              },
              {
                type: "node",
                node: "pve3",
                status: "offline",
                cpu: 0,
                maxcpu: 16,
                mem: 0,
                maxmem: 64 * GiB,
              },
            ],
          },
        };
      }
      return { body: { data: opts.vms } };
    }
    if (r.method === "GET" && p === "/cluster/nextid") {
      const vmid = Number(r.query.get("vmid"));
      return taken.has(vmid)
        ? { status: 400, body: { data: null, errors: { vmid: `VM ${vmid} already exists` } } }
        : { body: { data: String(vmid) } };
    }
    if (r.method === "GET" && p.includes("/tasks/")) {
      if (polls-- > 0) return { body: { data: { status: "running", type: "qmclone" } } };
      const failing = opts.failStart && decodeURIComponent(p).includes(":qmstart:");
      return {
        body: {
          data: { status: "stopped", exitstatus: failing ? "start failed: no memory" : "OK" },
        },
      };
    }
    let m = p.match(/^\/nodes\/([^/]+)\/qemu\/(\d+)\/clone$/);
    if (r.method === "POST" && m) return { body: { data: upid(m[1]!, "qmclone", Number(m[2])) } };
    m = p.match(/^\/nodes\/([^/]+)\/qemu\/(\d+)\/status\/(start|stop)$/);
    if (r.method === "POST" && m) return { body: { data: upid(m[1]!, `qm${m[3]}`, Number(m[2])) } };
    m = p.match(/^\/nodes\/([^/]+)\/qemu\/(\d+)$/);
    if (r.method === "DELETE" && m)
      return { body: { data: upid(m[1]!, "qmdestroy", Number(m[2])) } };
    if (r.method === "PUT" && /\/qemu\/\d+\/(config|resize)$/.test(p))
      return { body: { data: null } };
    m = p.match(/^\/nodes\/([^/]+)\/storage\/([^/]+)\/upload$/);
    if (r.method === "POST" && m) return { body: { data: upid(m[1]!, "imgcopy", 0) } };
    if (r.method === "DELETE" && p.includes("/content/")) return { body: { data: null } };
    m = p.match(/^\/nodes\/([^/]+)\/qemu\/(\d+)\/status\/current$/);
    if (r.method === "GET" && m)
      return { body: { data: { status: "running", qmpstatus: "paused" } } };
    m = p.match(/^\/nodes\/([^/]+)\/qemu\/(\d+)\/config$/);
    if (r.method === "GET" && m) {
      return {
        body: {
          data: {
            description:
              "user notes\n**DO NOT EDIT BELOW - managed by nstance**  \ntenant: default  \ngroup: web  \nkind: tst  \ntemplate: test  \ncreated: 2026-01-02T00:00:00.000Z  \n**DO NOT EDIT ABOVE - managed by nstance**",
          },
        },
      };
    }
    return { status: 501, body: { data: null, errors: `unexpected ${r.method} ${p}` } };
  };
}

function calls(): string[] {
  return server.requests.map((r) => `${r.method} ${r.path.slice(API.length)}`);
}

describe("ProxmoxProvider", () => {
  before(async () => {
    server = await startCannedServer((r) => respond(r));
    provider = new ProxmoxProvider({
      apiUrl: `${server.url}${API}`,
      tokenId: "root@pam!nstance",
      tokenSecret: "s3cret-uuid",
      region: "lab",
      zone: "rack-1",
      cloudInitStorage: "isos",
      taskPollIntervalMs: 1,
    });
  });
  after(async () => {
    await provider.close();
    await server.close();
  });
  beforeEach(() => {
    server.requests.length = 0;
  });

  it("clones, configures, attaches cloud-init and starts on the best node", async () => {
    respond = fakeCluster({
      vms: [
        {
          type: "qemu",
          vmid: 9000,
          name: "debian-12",
          node: "pve1",
          template: 1,
          status: "stopped",
        },
        { type: "qemu", vmid: 100, name: "other", node: "pve1", status: "running" },
      ],
      runningPolls: 2,
    });
    const req = testCreateRequest({
      clusterId: "Prod",
      shard: "rack-1",
      subnetId: "vmbr1",
      userData: "echo hi\n",
      args: {
        TemplateName: "debian-12",
        StoragePool: "local-lvm",
        Cores: 4,
        Memory: 8192,
        VLANTag: 20,
        StartOnBoot: true,
        DiskSize: "40G",
        Pool: "nstance",
      },
    });
    const res = await provider.createInstance(req);
    assert.equal(res.providerInstanceId, "10001");
    assert.equal(res.status, "pending");
    assert.equal(res.hostname, req.instanceId);

    const seq = calls().filter((c) => !c.includes("/tasks/"));
    assert.deepEqual(seq, [
      "GET /cluster/resources",
      "GET /cluster/resources",
      "GET /cluster/nextid",
      "GET /cluster/nextid",
      "POST /nodes/pve1/qemu/9000/clone",
      "PUT /nodes/pve2/qemu/10001/config",
      "PUT /nodes/pve2/qemu/10001/resize",
      "POST /nodes/pve2/storage/isos/upload",
      "PUT /nodes/pve2/qemu/10001/config",
      "POST /nodes/pve2/qemu/10001/status/start",
    ]);
    const req0 = server.requests[0]!;
    assert.equal(req0.headers.authorization, "PVEAPIToken=root@pam!nstance=s3cret-uuid");
    const nextids = server.requests
      .filter((r) => r.path.endsWith("/nextid"))
      .map((r) => r.query.get("vmid"));
    assert.deepEqual(nextids, ["10000", "10001"], "starts above the floor, skips a taken VMID");

    const clone = server.requests.find((r) => r.path.endsWith("/clone"))!;
    assert.deepEqual(clone.body, {
      newid: "10001",
      name: req.instanceId,
      full: "1",
      storage: "local-lvm",
      target: "pve2",
      pool: "nstance",
    });
    const [config, ide] = server.requests.filter(
      (r) => r.method === "PUT" && r.path.endsWith("/config"),
    );
    const cfg = config!.body as Record<string, string>;
    assert.equal(cfg.tags, "nstance;cluster-prod;shard-rack-1");
    assert.equal(cfg.cores, "4");
    assert.equal(cfg.memory, "8192");
    assert.equal(cfg.net0, "virtio,bridge=vmbr1,tag=20");
    assert.equal(cfg.onboot, "1");
    assert.match(cfg.description!, /group: web {2}\n/);
    assert.match(cfg.description!, /tenant: default/);
    assert.deepEqual(ide!.body, { ide2: "isos:iso/nstance-10001-cidata.iso,media=cdrom" });
    assert.deepEqual(server.requests.find((r) => r.path.endsWith("/resize"))!.body, {
      disk: "scsi0",
      size: "40G",
    });

    const upload = server.requests.find((r) => r.path.endsWith("/upload"))!;
    assert.match(String(upload.headers["content-type"]), /^multipart\/form-data; boundary=/);
    const raw = upload.raw.toString("latin1");
    assert.match(raw, /name="content"\r\n\r\niso\r\n/);
    assert.match(raw, /name="filename"; filename="nstance-10001-cidata\.iso"/);
    assert.ok(raw.includes("CD001"), "an ISO 9660 image");
    assert.ok(raw.includes("#!/bin/bash\necho hi\n"), "userdata without a shebang gets one");
    assert.ok(raw.includes(`instance-id: ${req.instanceId}\nlocal-hostname: ${req.instanceId}\n`));
    // The clone task was polled until it stopped.
    assert.ok(server.requests.filter((r) => r.path.includes("/tasks/")).length >= 5);
  });

  it("removes the clone when a later step fails", async () => {
    respond = fakeCluster({
      vms: [{ type: "qemu", vmid: 9000, name: "debian-12", node: "pve2", template: 1 }],
      failStart: true,
    });
    const req = testCreateRequest({ args: { TemplateVMID: 9000, StoragePool: "local-lvm" } });
    await assert.rejects(provider.createInstance(req), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.match(err.message, /start failed: no memory/);
      assert.equal(err.transient, false);
      return true;
    });
    // The counter only grows: this provider handed out 10001 before, so this clone is 10002.
    const vmid = (
      server.requests.find((r) => r.path.endsWith("/clone"))!.body as Record<string, string>
    ).newid;
    assert.equal(vmid, "10002");
    const seq = calls().filter((c) => !c.includes("/tasks/") && !c.includes("/cluster/"));
    assert.deepEqual(seq.slice(-3), [
      `POST /nodes/pve2/qemu/${vmid}/status/stop`,
      `DELETE /nodes/pve2/qemu/${vmid}`,
      `DELETE /nodes/pve2/storage/isos/content/isos:iso/nstance-${vmid}-cidata.iso`,
    ]);
    // Same node as the template: no cross-node target.
    assert.equal(
      (server.requests.find((r) => r.path.endsWith("/clone"))!.body as Record<string, string>)
        .target,
      undefined,
    );
  });

  it("validates args before calling the API", async () => {
    respond = () => ({ status: 500 });
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ TemplateName: "t" }, /StoragePool is required/],
      [{ TemplateName: "t", TemplateVMID: 9000, StoragePool: "s" }, /exactly one of/],
      [{ StoragePool: "s" }, /exactly one of/],
      [{ TemplateVMID: 9000, StoragePool: "s", ImageId: "x" }, /unknown args ImageId/],
      [{ TemplateVMID: "9000", StoragePool: "s" }, /TemplateVMID must be a positive integer/],
    ];
    for (const [args, re] of bad) {
      await assert.rejects(provider.createInstance(testCreateRequest({ args })), re);
    }
    assert.equal(server.requests.length, 0);
  });

  it("reads status from status/current and annotations from the notes", async () => {
    const id = newInstanceId("tst", Date.UTC(2026, 0, 2));
    respond = fakeCluster({
      vms: [
        {
          type: "qemu",
          vmid: 10005,
          name: id,
          node: "pve2",
          status: "running",
          tags: "nstance;cluster-prod;shard-rack-1",
        },
        {
          type: "qemu",
          vmid: 10006,
          name: id,
          node: "pve2",
          status: "running",
          tags: "someone-else",
        },
      ],
    });
    const st = await provider.getInstanceStatus(id, "10005");
    assert.equal(st?.status, "suspended");
    assert.equal(st?.instanceId, id);
    assert.equal(st?.group, "web");
    assert.equal(st?.tenant, "default");
    assert.equal(st?.instanceKind, "tst");
    assert.equal(st?.launchedAt, Date.UTC(2026, 0, 2));
    assert.equal(st?.zone, "rack-1");
    assert.equal(await provider.getInstanceStatus("tstother", "10005"), undefined, "VMID reused");
    assert.equal(await provider.getInstanceStatus(id, "10006"), undefined, "not tagged as ours");
    assert.equal(await provider.getInstanceStatus(id, "424242"), undefined, "gone");
    // A record without the VMID (crash before it was stored) finds the VM by name.
    assert.equal((await provider.getInstanceStatus(id, ""))?.providerInstanceId, "10005");
    assert.equal(await provider.getInstanceStatus(id, "not-a-vmid"), undefined);
  });

  it("lists VMs tagged for the cluster and shard", async () => {
    const a = newInstanceId("tst");
    const b = newInstanceId("tst");
    respond = fakeCluster({
      vms: [
        {
          type: "qemu",
          vmid: 10010,
          name: a,
          node: "pve1",
          status: "running",
          tags: ownershipTags("prod", "rack-1").join(";"),
        },
        {
          type: "qemu",
          vmid: 10011,
          name: b,
          node: "pve2",
          status: "stopped",
          lock: "clone",
          tags: "nstance;cluster-prod;shard-rack-1",
        },
        {
          type: "qemu",
          vmid: 10012,
          name: newInstanceId("tst"),
          node: "pve2",
          status: "running",
          tags: "nstance;cluster-prod;shard-rack-2",
        },
        {
          type: "qemu",
          vmid: 10013,
          name: "hand-made",
          node: "pve2",
          status: "running",
          tags: "nstance;cluster-prod;shard-rack-1",
        },
        {
          type: "qemu",
          vmid: 9000,
          name: newInstanceId("tst"),
          node: "pve1",
          template: 1,
          tags: "nstance;cluster-prod;shard-rack-1",
        },
        {
          type: "lxc",
          vmid: 10014,
          name: newInstanceId("tst"),
          node: "pve1",
          tags: "nstance;cluster-prod;shard-rack-1",
        },
      ],
    });
    const list = await provider.listInstances({ clusterId: "prod", shard: "rack-1" });
    assert.deepEqual(
      list.map((i) => [i.instanceId, i.providerInstanceId, i.status, i.clusterId, i.shard]),
      [
        [a, "10010", "running", "prod", "rack-1"],
        [b, "10011", "pending", "prod", "rack-1"],
      ],
    );
  });

  it("deletes: stop, destroy with disks, remove the image; gone or reused VMIDs are not_found", async () => {
    const id = newInstanceId("tst");
    respond = fakeCluster({
      vms: [
        { type: "qemu", vmid: 10020, name: id, node: "pve1", status: "running", tags: "nstance" },
      ],
    });
    assert.equal(await provider.deleteInstance(id, "10020"), "deleted");
    const seq = calls().filter((c) => !c.includes("/tasks/"));
    assert.deepEqual(seq, [
      "GET /cluster/resources",
      "POST /nodes/pve1/qemu/10020/status/stop",
      "DELETE /nodes/pve1/qemu/10020",
      "DELETE /nodes/pve1/storage/isos/content/isos:iso/nstance-10020-cidata.iso",
    ]);
    const del = server.requests.find((r) => r.method === "DELETE" && r.path.endsWith("/10020"))!;
    assert.equal(del.query.get("purge"), "1");
    assert.equal(del.query.get("destroy-unreferenced-disks"), "1");
    server.requests.length = 0;
    assert.equal(await provider.deleteInstance(id, "10099"), "not_found");
    assert.equal(await provider.deleteInstance("tstsomeoneelse", "10020"), "not_found");
    assert.deepEqual(
      calls(),
      ["GET /cluster/resources", "GET /cluster/resources"],
      "no destructive call",
    );
  });

  it("classifies HTTP failures", async () => {
    let status = 401;
    respond = () => ({ status, body: { data: null } });
    await assert.rejects(provider.listInstances({ clusterId: "c", shard: "s" }), {
      code: "unauthenticated",
      transient: false,
    });
    status = 596;
    await assert.rejects(provider.listInstances({ clusterId: "c", shard: "s" }), {
      transient: true,
    });
    status = 503;
    await assert.rejects(provider.listInstances({ clusterId: "c", shard: "s" }), {
      transient: true,
    });
  });

  it("supports no load balancers and no leader network", async () => {
    respond = () => ({ status: 500 });
    const lb = { providerInstanceId: "10001", lbName: "x", lbConfig: testLbConfig() };
    await assert.rejects(provider.registerWithLb(lb), { code: "invalid_argument" });
    await provider.deregisterFromLb(lb);
    assert.equal(await provider.getLbTargetState(lb), "deregistered");
    assert.deepEqual(await provider.listLbInstances({ lbName: "x", lbConfig: lb.lbConfig }), []);
    await provider.assignLeaderNetwork("10001", { ip: "10.0.0.1" });
    await provider.releaseLeaderNetwork("10001", { ip: "10.0.0.1" });
    assert.equal(await provider.checkSubnetCapacity("vmbr0"), true);
    assert.equal(server.requests.length, 0);
  });

  it("maps Proxmox states", () => {
    const table: Array<[string | undefined, string | undefined, string | undefined, string]> = [
      ["running", "running", undefined, "running"],
      ["running", "paused", undefined, "suspended"],
      ["running", "suspended", undefined, "suspended"],
      ["running", "prelaunch", undefined, "pending"],
      ["stopped", undefined, undefined, "stopped"],
      ["stopped", undefined, "clone", "pending"],
      ["paused", undefined, undefined, "suspended"],
      ["weird", undefined, undefined, "unknown"],
    ];
    for (const [s, q, lock, want] of table) assert.equal(mapProxmoxStatus(s, q, lock), want);
  });
});
