// SPDX-License-Identifier: Apache-2.0
/**
 * The AWS provider against the real SDK clients, answered at the transport: a request handler
 * records each signed HTTP request and returns canned EC2 / ELBv2 XML. Nothing of ours is mocked.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ProviderError } from "../provider.js";
import { testCreateRequest, testLbConfig } from "../testing.js";
import { AwsProvider, type AwsProviderOptions, mapEc2State } from "./aws-provider.js";

interface Recorded {
  host: string;
  action: string;
  params: URLSearchParams;
  authorization: string;
}

type Reply = { status?: number; xml: string };
type Responder = (action: string, params: URLSearchParams, host: string) => Reply;

const EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const ELB_NS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

function ec2(action: string, inner: string): Reply {
  return {
    xml: `<${action}Response xmlns="${EC2_NS}"><requestId>req-1</requestId>${inner}</${action}Response>`,
  };
}

function ec2Error(status: number, code: string, message = "nope"): Reply {
  return {
    status,
    xml: `<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>req-1</RequestID></Response>`,
  };
}

function elb(action: string, inner = ""): Reply {
  return {
    xml: `<${action}Response xmlns="${ELB_NS}"><${action}Result>${inner}</${action}Result><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></${action}Response>`,
  };
}

function elbError(status: number, code: string): Reply {
  return {
    status,
    xml: `<ErrorResponse xmlns="${ELB_NS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>nope</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`,
  };
}

function instanceXml(o: {
  id: string;
  state: string;
  tags?: Record<string, string>;
  ip?: string;
  ipv6?: string;
}): string {
  const tags = Object.entries(o.tags ?? {})
    .map(([k, v]) => `<item><key>${k}</key><value>${v}</value></item>`)
    .join("");
  return `<item><instanceId>${o.id}</instanceId><instanceType>m5.large</instanceType>
    <instanceState><code>16</code><name>${o.state}</name></instanceState>
    <privateDnsName>ip-10-0-1-5.us-west-2.compute.internal</privateDnsName>
    <launchTime>2026-01-02T03:04:05.000Z</launchTime>
    <placement><availabilityZone>us-west-2a</availabilityZone></placement>
    ${o.ip ? `<privateIpAddress>${o.ip}</privateIpAddress>` : ""}
    ${o.ipv6 ? `<ipv6Address>${o.ipv6}</ipv6Address>` : ""}
    <tagSet>${tags}</tagSet></item>`;
}

function reservations(...items: string[]): string {
  return `<reservationSet><item><reservationId>r-1</reservationId><instancesSet>${items.join("")}</instancesSet></item></reservationSet>`;
}

function setup(respond: Responder, extra: Partial<AwsProviderOptions> = {}) {
  const requests: Recorded[] = [];
  const handler = {
    async handle(request: { hostname: string; headers: Record<string, string>; body?: unknown }) {
      const params = new URLSearchParams(String(request.body ?? ""));
      const action = params.get("Action") ?? "";
      requests.push({
        host: request.hostname,
        action,
        params,
        authorization: request.headers.authorization ?? "",
      });
      const reply = respond(action, params, request.hostname);
      return {
        response: {
          statusCode: reply.status ?? 200,
          headers: { "content-type": "text/xml" },
          body: new TextEncoder().encode(reply.xml),
        },
      };
    },
    updateHttpClientConfig() {},
    httpHandlerConfigs() {
      return {};
    },
  };
  const provider = new AwsProvider({
    region: "us-west-2",
    zone: "us-west-2a",
    credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret" },
    maxAttempts: 1,
    eniPollIntervalMs: 1,
    requestHandler: handler as AwsProviderOptions["requestHandler"],
    ...extra,
  });
  return { provider, requests };
}

/** The entries of a query-protocol list parameter, e.g. `Filter.N.Name`. */
function listParam(params: URLSearchParams, prefix: string, suffix = ""): string[] {
  const out: string[] = [];
  for (let i = 1; params.has(`${prefix}.${i}${suffix}`); i++) {
    out.push(params.get(`${prefix}.${i}${suffix}`)!);
  }
  return out;
}

describe("AwsProvider", () => {
  it("runs an instance with nstance tags, args, userdata and an idempotency token", async () => {
    const { provider, requests } = setup(() =>
      ec2(
        "RunInstances",
        `<reservationId>r-1</reservationId><instancesSet>${instanceXml({ id: "i-0abc", state: "pending", ip: "10.0.1.5", ipv6: "2600::5" })}</instancesSet>`,
      ),
    );
    const req = testCreateRequest({
      instanceType: "m5.large",
      subnetId: "subnet-0a1",
      userData: "#!/bin/sh\necho hi\n",
      tags: { team: "infra", "nstance:managed": "false" },
      args: {
        ImageId: "ami-123",
        SecurityGroupIds: ["sg-1", "sg-2"],
        IamInstanceProfile: { Name: "nstance-node" },
        MetadataOptions: { HttpTokens: "required" },
        TagSpecifications: [
          {
            ResourceType: "instance",
            Tags: [
              { Key: "Name", Value: "custom-name" },
              { Key: "nstance:group", Value: "evil" },
            ],
          },
          { ResourceType: "volume", Tags: [{ Key: "backup", Value: "daily" }] },
        ],
      },
    });
    const res = await provider.createInstance(req);
    assert.deepEqual(res, {
      instanceId: req.instanceId,
      providerInstanceId: "i-0abc",
      status: "pending",
      privateIpv4: "10.0.1.5",
      privateIpv6: "2600::5",
      hostname: "ip-10-0-1-5",
      launchedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
    });
    assert.equal(requests.length, 1);
    const { params, host, authorization } = requests[0]!;
    assert.equal(host, "ec2.us-west-2.amazonaws.com");
    assert.match(
      authorization,
      /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/\d{8}\/us-west-2\/ec2\/aws4_request/,
    );
    assert.equal(params.get("Action"), "RunInstances");
    assert.equal(params.get("InstanceType"), "m5.large");
    assert.equal(params.get("SubnetId"), "subnet-0a1");
    assert.equal(params.get("MinCount"), "1");
    assert.equal(params.get("MaxCount"), "1");
    assert.equal(params.get("ClientToken"), req.instanceId);
    assert.equal(Buffer.from(params.get("UserData")!, "base64").toString(), "#!/bin/sh\necho hi\n");
    assert.equal(params.get("ImageId"), "ami-123");
    assert.deepEqual(listParam(params, "SecurityGroupId"), ["sg-1", "sg-2"]);
    assert.equal(params.get("IamInstanceProfile.Name"), "nstance-node");
    assert.equal(params.get("MetadataOptions.HttpTokens"), "required");

    assert.equal(params.get("TagSpecification.1.ResourceType"), "instance");
    const keys = listParam(params, "TagSpecification.1.Tag", ".Key");
    const values = listParam(params, "TagSpecification.1.Tag", ".Value");
    const tags = Object.fromEntries(keys.map((k, i) => [k, values[i]]));
    assert.deepEqual(tags, {
      "nstance:instance-id": req.instanceId,
      "nstance:managed": "true",
      "nstance:cluster-id": "test-cluster",
      "nstance:shard": "shard-a",
      "nstance:tenant": "default",
      "nstance:group": "web",
      "nstance:template": "test",
      "nstance:instance-kind": "tst",
      Name: "custom-name",
      team: "infra",
    });
    assert.equal(params.get("TagSpecification.2.ResourceType"), "volume");
    assert.equal(params.get("TagSpecification.2.Tag.1.Key"), "backup");
  });

  it("puts the subnet on the primary interface when args give network interfaces", async () => {
    const { provider, requests } = setup(() =>
      ec2(
        "RunInstances",
        `<instancesSet>${instanceXml({ id: "i-1", state: "pending" })}</instancesSet>`,
      ),
    );
    await provider.createInstance(
      testCreateRequest({
        subnetId: "subnet-9",
        args: {
          NetworkInterfaces: [
            { DeviceIndex: 0, Groups: ["sg-1"], AssociatePublicIpAddress: false },
          ],
        },
      }),
    );
    const p = requests[0]!.params;
    assert.equal(p.get("SubnetId"), null);
    assert.equal(p.get("NetworkInterface.1.SubnetId"), "subnet-9");
    assert.equal(p.get("NetworkInterface.1.SecurityGroupId.1"), "sg-1");
  });

  it("rejects unknown and reserved args before calling AWS", async () => {
    const { provider, requests } = setup(() => {
      throw new Error("no request expected");
    });
    await assert.rejects(
      provider.createInstance(testCreateRequest({ args: { SecurityGroupId: ["sg-1"] } })),
      (err: unknown) =>
        err instanceof ProviderError &&
        err.code === "invalid_argument" &&
        /SecurityGroupId/.test(err.message),
    );
    await assert.rejects(
      provider.createInstance(testCreateRequest({ args: { SubnetId: "x" } })),
      /nstance sets them/,
    );
    assert.equal(requests.length, 0);
  });

  it("terminates, tolerating an instance that is already gone", async () => {
    let gone = false;
    const { provider, requests } = setup(() =>
      gone
        ? ec2Error(400, "InvalidInstanceID.NotFound", "The instance ID 'i-0abc' does not exist")
        : ec2(
            "TerminateInstances",
            "<instancesSet><item><instanceId>i-0abc</instanceId><currentState><code>32</code><name>shutting-down</name></currentState></item></instancesSet>",
          ),
    );
    assert.equal(await provider.deleteInstance("tstx", "i-0abc"), "deleted");
    assert.equal(requests[0]!.action, "TerminateInstances");
    assert.equal(requests[0]!.params.get("InstanceId.1"), "i-0abc");
    gone = true;
    assert.equal(await provider.deleteInstance("tstx", "i-0abc"), "not_found");
  });

  it("maps DescribeInstances to a status; not found is undefined", async () => {
    const req = testCreateRequest();
    let reply: Reply = ec2(
      "DescribeInstances",
      reservations(
        instanceXml({
          id: "i-0abc",
          state: "stopped",
          ip: "10.0.1.5",
          tags: {
            "nstance:instance-id": req.instanceId,
            "nstance:cluster-id": "prod",
            "nstance:shard": "us-west-2a",
            "nstance:tenant": "default",
            "nstance:group": "web",
            "nstance:instance-kind": "tst",
            Name: "prod-web",
          },
        }),
      ),
    );
    const { provider, requests } = setup(() => reply);
    const st = await provider.getInstanceStatus(req.instanceId, "i-0abc");
    assert.equal(requests[0]!.params.get("InstanceId.1"), "i-0abc");
    assert.deepEqual(st, {
      instanceId: req.instanceId,
      providerInstanceId: "i-0abc",
      status: "stopped",
      instanceType: "m5.large",
      privateIpv4: "10.0.1.5",
      privateIpv6: undefined,
      hostname: "ip-10-0-1-5",
      launchedAt: Date.UTC(2026, 0, 2, 3, 4, 5),
      region: "us-west-2",
      zone: "us-west-2a",
      clusterId: "prod",
      shard: "us-west-2a",
      tenant: "default",
      group: "web",
      template: undefined,
      instanceKind: "tst",
      tags: {
        "nstance:instance-id": req.instanceId,
        "nstance:cluster-id": "prod",
        "nstance:shard": "us-west-2a",
        "nstance:tenant": "default",
        "nstance:group": "web",
        "nstance:instance-kind": "tst",
        Name: "prod-web",
      },
    });
    // A VM tagged with another instance ID is not this instance.
    assert.equal(await provider.getInstanceStatus("tstother", "i-0abc"), undefined);
    reply = ec2Error(400, "InvalidInstanceID.NotFound");
    assert.equal(await provider.getInstanceStatus(req.instanceId, "i-0abc"), undefined);
    reply = ec2("DescribeInstances", "<reservationSet/>");
    assert.equal(await provider.getInstanceStatus(req.instanceId, "i-0abc"), undefined);
  });

  it("finds a VM by its instance ID tag when the record lacks the EC2 ID", async () => {
    let found = true;
    const { provider, requests } = setup((action) => {
      if (action === "TerminateInstances") return ec2(action, "<instancesSet/>");
      return ec2(
        "DescribeInstances",
        found
          ? reservations(
              instanceXml({
                id: "i-0found",
                state: "running",
                tags: { "nstance:instance-id": "tsta" },
              }),
            )
          : "<reservationSet/>",
      );
    });
    const st = await provider.getInstanceStatus("tsta", "");
    assert.equal(st?.providerInstanceId, "i-0found");
    const p = requests[0]!.params;
    assert.equal(p.get("Filter.1.Name"), "tag:nstance:instance-id");
    assert.equal(p.get("Filter.1.Value.1"), "tsta");
    assert.equal(p.get("InstanceId.1"), null);
    assert.equal(await provider.deleteInstance("tsta", ""), "deleted");
    assert.equal(requests.at(-1)!.action, "TerminateInstances");
    assert.equal(requests.at(-1)!.params.get("InstanceId.1"), "i-0found");
    found = false;
    requests.length = 0;
    assert.equal(await provider.getInstanceStatus("tsta", ""), undefined);
    assert.equal(await provider.deleteInstance("tsta", ""), "not_found");
    assert.deepEqual(
      requests.map((r) => r.action),
      ["DescribeInstances", "DescribeInstances"],
    );
  });

  it("lists every page with the ownership and live-state filters", async () => {
    const { provider, requests } = setup(
      (_action, params) => {
        const token = params.get("NextToken");
        if (!token) {
          return ec2(
            "DescribeInstances",
            `${reservations(
              instanceXml({ id: "i-1", state: "running", tags: { "nstance:instance-id": "tsta" } }),
              instanceXml({
                id: "i-2",
                state: "shutting-down",
                tags: { "nstance:instance-id": "tstb" },
              }),
            )}<nextToken>page-2</nextToken>`,
          );
        }
        assert.equal(token, "page-2");
        // A managed VM without an ID tag: dangling, listed with an empty instance ID.
        return ec2("DescribeInstances", reservations(instanceXml({ id: "i-3", state: "pending" })));
      },
      { listPageSize: 2 },
    );
    const list = await provider.listInstances({ clusterId: "prod", shard: "us-west-2a" });
    assert.deepEqual(
      list.map((i) => [i.providerInstanceId, i.instanceId, i.status]),
      [
        ["i-1", "tsta", "running"],
        ["i-2", "tstb", "deleting"],
        ["i-3", "", "pending"],
      ],
    );
    assert.equal(requests.length, 2);
    const p = requests[0]!.params;
    assert.equal(p.get("MaxResults"), "2");
    const filters = listParam(p, "Filter", ".Name").map((name, i) => [
      name,
      listParam(p, `Filter.${i + 1}.Value`),
    ]);
    assert.deepEqual(filters, [
      ["tag:nstance:managed", ["true"]],
      ["tag:nstance:cluster-id", ["prod"]],
      ["tag:nstance:shard", ["us-west-2a"]],
      ["instance-state-name", ["pending", "running", "stopping", "stopped", "shutting-down"]],
    ]);
    assert.equal(requests[1]!.params.get("NextToken"), "page-2");
  });

  it("checks subnet capacity: more than 10 free addresses", async () => {
    let free = 11;
    const { provider, requests } = setup((_a, params) =>
      params.get("SubnetId.1") === "subnet-missing"
        ? ec2Error(400, "InvalidSubnetID.NotFound")
        : ec2(
            "DescribeSubnets",
            `<subnetSet><item><subnetId>subnet-1</subnetId><availableIpAddressCount>${free}</availableIpAddressCount></item></subnetSet>`,
          ),
    );
    assert.equal(await provider.checkSubnetCapacity("subnet-1"), true);
    assert.equal(requests[0]!.params.get("SubnetId.1"), "subnet-1");
    free = 10;
    assert.equal(await provider.checkSubnetCapacity("subnet-1"), false);
    await assert.rejects(provider.checkSubnetCapacity("subnet-missing"), (err: unknown) => {
      assert.ok(err instanceof ProviderError);
      assert.equal(err.code, "not_found");
      assert.equal(err.transient, false);
      return true;
    });
  });

  it("classifies errors: throttling and 5xx are transient, auth is not", async () => {
    let reply = ec2Error(503, "Unavailable");
    const { provider } = setup(() => reply);
    const check = async (transient: boolean, code: RegExp) => {
      await assert.rejects(provider.checkSubnetCapacity("subnet-1"), (err: unknown) => {
        assert.ok(err instanceof ProviderError);
        assert.equal(err.provider, "aws");
        assert.equal(err.op, "DescribeSubnets");
        assert.equal(err.transient, transient);
        assert.match(err.message, code);
        return true;
      });
    };
    await check(true, /Unavailable/);
    reply = ec2Error(400, "RequestLimitExceeded");
    await check(true, /RequestLimitExceeded/);
    reply = ec2Error(403, "UnauthorizedOperation");
    await check(false, /UnauthorizedOperation/);
  });

  it("moves the leader ENI: force-detach from the old leader, attach, wait until in use", async () => {
    const states = ["attached-elsewhere", "available", "available", "in-use"];
    const { provider, requests } = setup((action) => {
      if (action === "DescribeNetworkInterfaces") {
        const s = states.shift()!;
        const attachment =
          s === "attached-elsewhere"
            ? "<attachment><attachmentId>eni-attach-old</attachmentId><instanceId>i-old</instanceId><status>attached</status></attachment>"
            : s === "in-use"
              ? "<attachment><attachmentId>eni-attach-new</attachmentId><instanceId>i-new</instanceId><status>attached</status></attachment>"
              : "";
        const status = s === "attached-elsewhere" ? "in-use" : s;
        return ec2(
          action,
          `<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><status>${status}</status>${attachment}</item></networkInterfaceSet>`,
        );
      }
      if (action === "DetachNetworkInterface") return ec2(action, "<return>true</return>");
      return ec2(action, "<attachmentId>eni-attach-new</attachmentId>");
    });
    await provider.assignLeaderNetwork("i-new", { interfaceId: "eni-1", ip: "10.0.0.100" });
    assert.deepEqual(
      requests.map((r) => r.action),
      [
        "DescribeNetworkInterfaces",
        "DetachNetworkInterface",
        "DescribeNetworkInterfaces",
        "AttachNetworkInterface",
        "DescribeNetworkInterfaces",
        "DescribeNetworkInterfaces",
      ],
    );
    assert.equal(requests[1]!.params.get("AttachmentId"), "eni-attach-old");
    assert.equal(requests[1]!.params.get("Force"), "true");
    assert.equal(requests[3]!.params.get("NetworkInterfaceId"), "eni-1");
    assert.equal(requests[3]!.params.get("InstanceId"), "i-new");
    assert.equal(requests[3]!.params.get("DeviceIndex"), "1");
  });

  it("releases the leader ENI only from its holder", async () => {
    let holder = "i-other";
    let detached = false;
    const { provider, requests } = setup((action) => {
      if (action === "DetachNetworkInterface") {
        detached = true;
        return ec2(action, "<return>true</return>");
      }
      return ec2(
        action,
        detached
          ? "<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><status>available</status></item></networkInterfaceSet>"
          : `<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><status>in-use</status><attachment><attachmentId>eni-attach-1</attachmentId><instanceId>${holder}</instanceId></attachment></item></networkInterfaceSet>`,
      );
    });
    await provider.releaseLeaderNetwork("i-me", { interfaceId: "eni-1" });
    assert.deepEqual(
      requests.map((r) => r.action),
      ["DescribeNetworkInterfaces"],
    );
    holder = "i-me";
    await provider.releaseLeaderNetwork("i-me", { interfaceId: "eni-1" });
    assert.deepEqual(
      requests.slice(1).map((r) => r.action),
      ["DescribeNetworkInterfaces", "DetachNetworkInterface", "DescribeNetworkInterfaces"],
    );
    assert.equal(requests[2]!.params.get("Force"), null);
    await assert.rejects(provider.releaseLeaderNetwork("i-me", {}), { code: "invalid_argument" });
  });

  const lbConfig = testLbConfig({
    provider: "aws",
    targetGroups: [
      {
        arn: "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/a/1",
        listenerPort: 443,
        targetPort: 8443,
        proxyPort: 18443,
      },
      {
        arn: "arn:aws:elasticloadbalancing:us-west-2:1:targetgroup/b/2",
        listenerPort: 80,
        targetPort: 8080,
        proxyPort: 18080,
      },
    ],
  });

  it("registers and deregisters with every target group, on the proxy port when waking", async () => {
    let failFirst = false;
    const { provider, requests } = setup((action, params) => {
      if (failFirst && params.get("TargetGroupArn")!.endsWith("/a/1"))
        return elbError(400, "TargetGroupNotFound");
      return elb(action);
    });
    const lb = { providerInstanceId: "i-0abc", lbName: "public", lbConfig };
    await provider.registerWithLb(lb);
    assert.deepEqual(
      requests.map((r) => [
        r.host,
        r.action,
        r.params.get("TargetGroupArn"),
        r.params.get("Targets.member.1.Id"),
        r.params.get("Targets.member.1.Port"),
      ]),
      [
        [
          "elasticloadbalancing.us-west-2.amazonaws.com",
          "RegisterTargets",
          lbConfig.targetGroups[0]!.arn,
          "i-0abc",
          "8443",
        ],
        [
          "elasticloadbalancing.us-west-2.amazonaws.com",
          "RegisterTargets",
          lbConfig.targetGroups[1]!.arn,
          "i-0abc",
          "8080",
        ],
      ],
    );
    requests.length = 0;
    failFirst = true;
    await assert.rejects(
      provider.deregisterFromLb({ ...lb, wakeProxy: true }),
      /TargetGroupNotFound/,
    );
    // The failure on the first group did not stop the second.
    assert.deepEqual(
      requests.map((r) => [r.action, r.params.get("Targets.member.1.Port")]),
      [
        ["DeregisterTargets", "18443"],
        ["DeregisterTargets", "18080"],
      ],
    );
    await assert.rejects(
      provider.registerWithLb({ ...lb, lbConfig: testLbConfig({ provider: "aws" }) }),
      { code: "invalid_argument" },
    );
  });

  it("aggregates target health across target groups", async () => {
    let states: Record<string, string> = {};
    const { provider } = setup((_action, params) => {
      const arn = params.get("TargetGroupArn")!;
      const s = states[arn.endsWith("/a/1") ? "a" : "b"] ?? "notregistered";
      const health =
        s === "notregistered"
          ? "<State>unused</State><Reason>Target.NotRegistered</Reason>"
          : `<State>${s}</State>`;
      return elb(
        "DescribeTargetHealth",
        `<TargetHealthDescriptions><member><Target><Id>i-0abc</Id><Port>8443</Port></Target><TargetHealth>${health}</TargetHealth></member></TargetHealthDescriptions>`,
      );
    });
    const lb = { providerInstanceId: "i-0abc", lbName: "public", lbConfig };
    const cases: Array<[Record<string, string>, string]> = [
      [{}, "deregistered"],
      [{ a: "healthy" }, "partially_registered"],
      [{ a: "initial", b: "healthy" }, "registered"],
      [{ a: "healthy", b: "healthy" }, "healthy"],
      [{ a: "draining", b: "healthy" }, "draining"],
      [{ a: "unhealthy", b: "healthy" }, "registered"],
    ];
    for (const [given, want] of cases) {
      states = given;
      assert.equal(await provider.getLbTargetState(lb), want, JSON.stringify(given));
    }
  });

  it("lists LB members across target groups without duplicates", async () => {
    const { provider, requests } = setup((_a, params) =>
      elb(
        "DescribeTargetHealth",
        params.get("TargetGroupArn")!.endsWith("/a/1")
          ? "<TargetHealthDescriptions><member><Target><Id>i-1</Id></Target></member><member><Target><Id>i-2</Id></Target></member></TargetHealthDescriptions>"
          : "<TargetHealthDescriptions><member><Target><Id>i-2</Id></Target></member></TargetHealthDescriptions>",
      ),
    );
    assert.deepEqual(await provider.listLbInstances({ lbName: "public", lbConfig }), [
      "i-1",
      "i-2",
    ]);
    assert.equal(requests[0]!.params.get("Targets.member.1.Id"), null);
  });

  it("does not call AWS once the signal has aborted", async () => {
    const { provider, requests } = setup(() => ec2("DescribeSubnets", "<subnetSet/>"));
    const ac = new AbortController();
    ac.abort(new Error("shutting down"));
    await assert.rejects(provider.checkSubnetCapacity("subnet-1", ac.signal), /shutting down/);
    assert.equal(requests.length, 0);
    await provider.close();
    await provider.close();
  });

  it("maps every EC2 state", () => {
    const table: Array<[string | undefined, string]> = [
      ["pending", "pending"],
      ["running", "running"],
      ["stopping", "stopping"],
      ["stopped", "stopped"],
      ["shutting-down", "deleting"],
      ["terminated", "deleted"],
      ["rebooting", "unknown"],
      [undefined, "unknown"],
    ];
    for (const [state, want] of table) assert.equal(mapEc2State(state), want);
  });
});
