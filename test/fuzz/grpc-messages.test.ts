// SPDX-License-Identifier: Apache-2.0
// gRPC fuzzing: every RPC of the Registration, Operator and Agent services, over real TLS 1.3 with
// real certificates, gets random well-formed requests (random bytes decoded and re-encoded by the
// method's own codec), malformed protobuf bytes (a passthrough serializer), and oversized
// messages. The server must answer or refuse each with a gRPC status, never crash or hang, and a
// healthy agent's health stream, open the whole time, must keep flowing.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { grpcChannelCredentials } from "../../src/pki/tls-options.js";
import {
  AgentServiceService,
  HealthReportRequest,
  PublicKeySubmission,
} from "../../src/protocol/gen/nstance/v1/agent.js";
import {
  GroupConfig,
  InstanceConfig,
  OperatorServiceService,
} from "../../src/protocol/gen/nstance/v1/operator.js";
import { RegistrationServiceService } from "../../src/protocol/gen/nstance/v1/registration.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../src/server/api/grpc-servers.js";
import {
  type AgentFixture,
  openHealthStream,
  report,
  startAgentFixture,
  WAIT_MS,
  waitFor,
} from "../agent-service/agent-fixture.js";
import { type ClientCert, issueClientCert } from "../api/api-fixture.js";
import { fuzzParameters, fuzzRuns } from "./fuzz-runs.js";
import { type AnyMethod, callRaw, type Outcome } from "./grpc-raw-call.js";
import { encodeWire, malformedWire, wireMessage } from "./protobuf-wire.js";

const RANDOM_RUNS = 600;
const HEALTHY_ID = "webhealthy01";
const FUZZ_AGENT_ID = "webfuzzer001";

type ServiceName = "registration" | "operator" | "agent";

/** Every method of the three services, with the listener it belongs to. */
const METHODS: Array<{ service: ServiceName; name: string; def: AnyMethod }> = [
  ...Object.entries(RegistrationServiceService).map(([name, def]) => ({
    service: "registration" as const,
    name,
    def: def as AnyMethod,
  })),
  ...Object.entries(OperatorServiceService).map(([name, def]) => ({
    service: "operator" as const,
    name,
    def: def as AnyMethod,
  })),
  ...Object.entries(AgentServiceService).map(([name, def]) => ({
    service: "agent" as const,
    name,
    def: def as AnyMethod,
  })),
];

const PUBLIC_KEY_PEM = Buffer.from(generateEd25519KeyPair().publicKeyPem);

/**
 * Plausible requests (the fuzz agent's instance, the example's group and template, the caller's
 * tenant). Random fields appended to these encodings override or extend them (protobuf merges
 * concatenated messages), so the random content reaches past the first validation.
 */
const PLAUSIBLE: Record<string, object> = {
  registerAgent: { publicKeyPem: PUBLIC_KEY_PEM, privateIpv4: "10.0.0.9", hostname: "h" },
  registerOperator: { publicKeyPem: PUBLIC_KEY_PEM },
  renewCertificate: { publicKeyPem: PUBLIC_KEY_PEM },
  upsertGroup: { key: "web", config: GroupConfig.fromPartial({ template: "web", size: 2 }) },
  deleteGroup: { key: "fuzzed" },
  createInstance: { config: InstanceConfig.fromPartial({ group: "web" }) },
  deleteInstance: { instanceId: FUZZ_AGENT_ID },
  getInstanceStatus: { instanceId: FUZZ_AGENT_ID },
  getInstanceHistory: { instanceId: FUZZ_AGENT_ID },
  acknowledgeDrained: { instanceId: FUZZ_AGENT_ID },
  listInstances: { group: "web" },
  sleepTenant: { tenant: "default" },
  wakeTenant: { tenant: "default" },
  getTenantStatus: { tenant: "default" },
  putSecret: { name: "fuzz-secret", value: Buffer.from("v") },
  deleteSecret: { name: "fuzz-secret" },
  submitPublicKeys: {
    instanceId: FUZZ_AGENT_ID,
    keys: [PublicKeySubmission.fromPartial({ filename: "web.pub", publicKeyPem: PUBLIC_KEY_PEM })],
  },
  submitHealthReport: HealthReportRequest.fromPartial(report(FUZZ_AGENT_ID)),
};

/** The plausible request of a method, encoded (the defaults where none is listed). */
function plausible(name: string, def: AnyMethod): Buffer {
  const defaults = def.requestDeserialize(Buffer.alloc(0)) as object;
  return def.requestSerialize({ ...defaults, ...PLAUSIBLE[name] });
}

/**
 * A well-formed request of random content: random wire bytes through the method's own decoder
 * and encoder. Undefined when the decoder refuses them (those go out as malformed bytes).
 */
function wellFormed(def: AnyMethod, bytes: Buffer): Buffer | undefined {
  try {
    return def.requestSerialize(def.requestDeserialize(bytes));
  } catch {
    return undefined;
  }
}

describe("gRPC services under random and malformed messages", { concurrency: false }, () => {
  let fx: AgentFixture;
  const clients = {} as Record<ServiceName, Client>;
  let operatorCert: ClientCert;
  let stopHealthy: () => Promise<void>;
  let healthyReportsAtStart = 0;
  /** Status histogram per method. */
  const seen = new Map<string, Map<string, number>>();

  const record = (name: string, o: Outcome): void => {
    const m = seen.get(name) ?? new Map<string, number>();
    const key = o.code === "open" ? "open" : status[o.code];
    m.set(key!, (m.get(key!) ?? 0) + 1);
    seen.set(name, m);
  };

  /** The outcome must be a status the server chose: never UNKNOWN, INTERNAL only for bytes it cannot decode. */
  const assertAnswered = (name: string, o: Outcome, malformed: boolean): void => {
    record(name, o);
    assert.notEqual(o.code, status.UNKNOWN, `${name}: UNKNOWN (an unhandled throw): ${o.details}`);
    assert.notEqual(o.code, status.DEADLINE_EXCEEDED, `${name}: no answer within the deadline`);
    if (o.code === status.INTERNAL) {
      assert.ok(
        malformed && o.details.startsWith("Error deserializing request"),
        `${name}: INTERNAL for a well-formed request: ${o.details}`,
      );
    }
  };

  before(async () => {
    fx = await startAgentFixture();
    fx.addInstance(HEALTHY_ID);
    fx.addInstance(FUZZ_AGENT_ID);
    operatorCert = await issueClientCert(fx.identity.ca, {
      clientId: "fuzz-operator",
      tenant: "default",
      role: "operator",
    });
    const port = (addr: string) => addr.slice(addr.lastIndexOf(":") + 1);
    const client = (addr: string, cert?: ClientCert) =>
      new Client(
        `localhost:${port(addr)}`,
        grpcChannelCredentials({ caCertPem: fx.identity.ca.certPem, ...(cert ?? {}) }),
      );
    clients.registration = client(fx.servers.addresses.registration);
    clients.operator = client(fx.servers.addresses.operator, operatorCert);
    clients.agent = client(fx.servers.addresses.agent, await fx.agentCert(FUZZ_AGENT_ID));

    // The healthy agent: one health stream, a report every 100 ms for the whole run.
    const healthy = openHealthStream(fx.client(await fx.agentCert(HEALTHY_ID)));
    const timer = setInterval(() => healthy.call.write(report(HEALTHY_ID)), 100);
    stopHealthy = async () => {
      clearInterval(timer);
      healthy.call.end();
      assert.equal(await healthy.done, null, "the healthy stream ends cleanly, when it chooses");
    };
    healthyReportsAtStart = await waitFor("healthy stream", () => {
      const n = fx.agents.connections.get(HEALTHY_ID)?.reports ?? 0;
      return n >= 2 ? n : undefined;
    });
  });

  after(async () => {
    for (const c of Object.values(clients)) c.close();
    await fx?.close();
  });

  it(`random well-formed and malformed requests on every RPC (${fuzzRuns(RANDOM_RUNS)} runs)`, async (t) => {
    const method = fc.nat({ max: METHODS.length - 1 });
    const payload = fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .tuple(wireMessage, fc.boolean())
          .map(([m, merge]) => ({ bytes: encodeWire(m), raw: false, merge })),
      },
      { weight: 1, arbitrary: malformedWire.map((bytes) => ({ bytes, raw: true, merge: false })) },
    );
    await fc.assert(
      fc.asyncProperty(method, fc.array(payload, { minLength: 1, maxLength: 3 }), async (i, ps) => {
        const { service, name, def } = METHODS[i]!;
        let malformed = false;
        const messages = ps.map((p) => {
          const bytes = p.merge ? Buffer.concat([plausible(name, def), p.bytes]) : p.bytes;
          const good = p.raw ? undefined : wellFormed(def, bytes);
          if (good === undefined) malformed = true;
          return good ?? bytes;
        });
        assertAnswered(name, await callRaw(clients[service], def, messages), malformed);
      }),
      fuzzParameters(RANDOM_RUNS),
    );
    for (const [m, codes] of [...seen].sort()) {
      t.diagnostic(`${m}: ${JSON.stringify(Object.fromEntries(codes))}`);
    }
  });

  it("every RPC refuses garbage and oversized messages, and answers an empty request", async () => {
    const garbage = [
      Buffer.from([0xff]),
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.concat([Buffer.alloc(100_000, 0x0b), Buffer.alloc(100_000, 0x0c)]),
    ];
    const oversized = Buffer.alloc(DEFAULT_MAX_MESSAGE_BYTES + 1024, 0x61);
    for (const { service, name, def } of METHODS) {
      assertAnswered(name, await callRaw(clients[service], def, [Buffer.alloc(0)]), false);
      assertAnswered(name, await callRaw(clients[service], def, [plausible(name, def)]), false);
      for (const g of garbage) {
        assertAnswered(name, await callRaw(clients[service], def, [g]), true);
      }
      // A string field of nearly the limit: decoded and handled (or refused) like any other.
      const big = encodeWire([{ field: 1, wire: 2, value: Buffer.alloc(3 * 1024 * 1024, 0x61) }]);
      assertAnswered(name, await callRaw(clients[service], def, [big]), false);
      const o = await callRaw(clients[service], def, [oversized]);
      assertAnswered(name, o, true);
      assert.equal(o.code, status.RESOURCE_EXHAUSTED, `${name}: oversized message accepted`);
    }
  });

  it("a refusal quoting a huge request field is delivered, and the connection stays usable", async () => {
    // Found by this fuzzer: NOT_FOUND quoted a 290 kB instance ID; trailers that large are never
    // sent, so the call and every later call on the same connection hung.
    const def = OperatorServiceService.getInstanceStatus as AnyMethod;
    const o = await callRaw(clients.operator, def, [
      def.requestSerialize({ instanceId: "x".repeat(300_000) }),
    ]);
    assertAnswered("getInstanceStatus", o, false);
    assert.equal(o.code, status.NOT_FOUND);
    assert.ok(o.details.length <= 1_000, `details of ${o.details.length} characters`);
    const next = await callRaw(clients.operator, OperatorServiceService.listGroups as AnyMethod, [
      Buffer.alloc(0),
    ]);
    assert.equal(next.code, status.OK);
  });

  it("the healthy agent's stream kept flowing, and the server still serves everyone", async () => {
    const before = fx.agents.connections.get(HEALTHY_ID)?.reports ?? 0;
    assert.ok(before > healthyReportsAtStart, "reports arrived during the fuzzing");
    await waitFor(
      "more healthy reports",
      () => (fx.agents.connections.get(HEALTHY_ID)?.reports ?? 0) >= before + 3,
      WAIT_MS,
    );
    assert.ok(
      !fx.disconnects.some((d) => d.instanceId === HEALTHY_ID),
      "the healthy stream was never disconnected",
    );
    await stopHealthy();
    // A plain call on every listener still works.
    const list = await callRaw(clients.operator, OperatorServiceService.listGroups as AnyMethod, [
      Buffer.alloc(0),
    ]);
    assert.equal(list.code, status.OK);
    const unexpected = fx.logger.lines.filter(
      (l) => l.msg === "RPC failed with an unexpected error",
    );
    assert.deepEqual(
      unexpected.map((l) => `${String(l.attrs?.method)}: ${String(l.attrs?.err)}`),
      [],
      "no handler failed in a way it did not expect",
    );
  });
});
