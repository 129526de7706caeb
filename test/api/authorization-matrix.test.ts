// SPDX-License-Identifier: Apache-2.0
// The authorization matrix: every RPC of the Operator and Agent services, called over real mTLS
// with each kind of client credential, gets the status the reference's rules give, and nothing is
// ever served to the wrong role or tenant. A method added to a service without a row here fails
// the coverage tests.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Client, type MethodDefinition, status } from "@grpc/grpc-js";
import { parseClientIdentity } from "../../src/pki/client-identity.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import { createTestPki } from "../../src/pki/testing.js";
import { x509 } from "../../src/pki/x509.js";
import { AgentServiceService } from "../../src/protocol/gen/nstance/v1/agent.js";
import {
  type GroupEvent,
  type GroupStatus,
  type InstanceSummary,
  OperatorServiceService,
  type RenewCertificateResponse,
} from "../../src/protocol/gen/nstance/v1/operator.js";
import {
  type ApiFixture,
  type CallOutcome,
  type ClientCert,
  invoke,
  issueClientCert,
  startApiFixture,
} from "./api-fixture.js";

const OWN = "default";
const OTHER = "other";
const OWN_INSTANCE = "web00001";
const OTHER_INSTANCE = "job00001";

/** Credential kinds, in the order the columns run (the other tenant before the owner). */
const CREDENTIALS = [
  "no client certificate",
  "certificate from another CA",
  "expired certificate",
  "certificate without an identity",
  "agent certificate",
  "operator certificate of another tenant",
  "operator certificate of the right tenant",
] as const;
type Credential = (typeof CREDENTIALS)[number];

/** What a call must produce: a status, or OK with a check of the response. */
type Expect = status | { ok: (value: unknown, tenant: string) => void };

/** One Operator RPC: its request (aimed at the owner tenant's objects) and per-tenant outcomes. */
interface OperatorRow {
  request?: object;
  own: Expect;
  other: Expect;
}

const allOfTenant =
  <T extends { tenant: string }>(pick: (v: unknown) => T[], mustInclude: Record<string, string>) =>
  (value: unknown, tenant: string) => {
    const items = pick(value);
    assert.ok(items.length > 0, "something is listed");
    for (const item of items) assert.equal(item.tenant, tenant, "only the caller tenant's data");
    const keys = items.map((i) =>
      "key" in i ? i.key : (i as unknown as InstanceSummary).instanceId,
    );
    assert.ok(keys.includes(mustInclude[tenant]!), `lists ${mustInclude[tenant]}`);
  };

const renewedForCaller = (value: unknown, tenant: string) => {
  const id = parseClientIdentity(
    (value as RenewCertificateResponse).clientCertificatePem.toString(),
  );
  assert.equal(id.tenant, tenant);
  assert.equal(id.role, "operator");
};

const ok = (value: unknown) => assert.ok(value !== undefined);

/**
 * Expected outcome of every Operator RPC for an operator of the owner tenant and of another one.
 * Requests name the owner's objects; "other" must never see or change them.
 */
const OPERATOR_ROWS: Record<keyof typeof OperatorServiceService, OperatorRow> = {
  renewCertificate: {
    request: { publicKeyPem: Buffer.from(generateEd25519KeyPair().publicKeyPem) },
    own: { ok: renewedForCaller },
    other: { ok: renewedForCaller },
  },
  getConfigStatus: { own: { ok }, other: { ok } },
  refreshConfig: { own: { ok }, other: { ok } },
  listGroups: {
    own: {
      ok: allOfTenant((v) => (v as { groups: GroupStatus[] }).groups, {
        [OWN]: "web",
        [OTHER]: "jobs",
      }),
    },
    other: {
      ok: allOfTenant((v) => (v as { groups: GroupStatus[] }).groups, {
        [OWN]: "web",
        [OTHER]: "jobs",
      }),
    },
  },
  upsertGroup: {
    // For the other tenant this creates its own group `batch`, never the owner's.
    request: {
      key: "batch",
      config: { template: "web", size: 2, instanceType: "", subnetPool: "", vars: {}, args: {} },
    },
    own: { ok: (v, t) => assert.equal((v as { group: GroupStatus }).group.tenant, t) },
    other: { ok: (v, t) => assert.equal((v as { group: GroupStatus }).group.tenant, t) },
  },
  deleteGroup: { request: { key: "batch2" }, own: { ok }, other: status.NOT_FOUND },
  createInstance: {
    request: { config: { group: "web", template: "", instanceType: "", subnetPool: "", vars: {} } },
    // This fixture runs no reconciler: instance RPCs pass every check, then answer UNAVAILABLE.
    own: status.UNAVAILABLE,
    other: status.NOT_FOUND,
  },
  deleteInstance: {
    request: { instanceId: OWN_INSTANCE },
    own: status.UNAVAILABLE,
    other: status.PERMISSION_DENIED,
  },
  getInstanceStatus: {
    request: { instanceId: OWN_INSTANCE },
    own: { ok: (v, t) => assert.equal((v as { tenant: string }).tenant, t) },
    other: status.PERMISSION_DENIED,
  },
  listInstances: {
    own: {
      ok: allOfTenant((v) => (v as { instances: InstanceSummary[] }).instances, {
        [OWN]: OWN_INSTANCE,
        [OTHER]: OTHER_INSTANCE,
      }),
    },
    other: {
      ok: allOfTenant((v) => (v as { instances: InstanceSummary[] }).instances, {
        [OWN]: OWN_INSTANCE,
        [OTHER]: OTHER_INSTANCE,
      }),
    },
  },
  getInstanceHistory: {
    request: { instanceId: OWN_INSTANCE },
    own: { ok: (v) => assert.equal((v as { entries: unknown[] }).entries.length, 1) },
    other: status.PERMISSION_DENIED,
  },
  acknowledgeDrained: {
    request: { instanceId: OWN_INSTANCE },
    own: status.UNAVAILABLE,
    other: status.PERMISSION_DENIED,
  },
  sleepTenant: {
    request: { tenant: OWN },
    own: status.UNIMPLEMENTED,
    other: status.PERMISSION_DENIED,
  },
  wakeTenant: { request: { tenant: OWN }, own: { ok }, other: status.PERMISSION_DENIED },
  getTenantStatus: { request: { tenant: OWN }, own: { ok }, other: status.PERMISSION_DENIED },
  putSecret: {
    request: { name: "db-password", value: Buffer.from("s3cret") },
    own: status.UNIMPLEMENTED,
    other: status.UNIMPLEMENTED,
  },
  listSecrets: { own: status.UNIMPLEMENTED, other: status.UNIMPLEMENTED },
  deleteSecret: {
    request: { name: "db-password" },
    own: status.UNIMPLEMENTED,
    other: status.UNIMPLEMENTED,
  },
  watchGroups: {
    own: { ok: (v, t) => assert.equal((v as GroupEvent).group?.tenant, t) },
    other: { ok: (v, t) => assert.equal((v as GroupEvent).group?.tenant, t) },
  },
  watchInstances: { own: status.UNAVAILABLE, other: status.UNAVAILABLE },
  watchErrors: { own: status.UNAVAILABLE, other: status.UNAVAILABLE },
};

/**
 * Expected outcome of every Agent RPC for an agent certificate. The agent service is added by its
 * own issue; until then each method answers UNIMPLEMENTED after the role check. Update these rows
 * (to `{ ok }` or a status) when it lands.
 */
const AGENT_ROWS: Record<keyof typeof AgentServiceService, { request?: object; agent: Expect }> = {
  receiveKeyRequests: { agent: status.UNIMPLEMENTED },
  submitPublicKeys: { request: { instanceId: OWN_INSTANCE }, agent: status.UNIMPLEMENTED },
  submitHealthReport: { agent: status.UNIMPLEMENTED },
  receiveFiles: { agent: status.UNIMPLEMENTED },
  renewAgentCertificate: { agent: status.UNIMPLEMENTED },
};

/** Outcomes that do not depend on the RPC: TLS refusals and role checks. */
function byCredential(credential: Credential, service: "operator" | "agent"): status | undefined {
  switch (credential) {
    case "no client certificate":
    case "certificate from another CA":
    case "expired certificate":
      // Refused in the TLS handshake (the client sees the connection fail): no handler runs.
      return status.UNAVAILABLE;
    case "certificate without an identity":
      return status.UNAUTHENTICATED;
    case "agent certificate":
      return service === "operator" ? status.PERMISSION_DENIED : undefined;
    case "operator certificate of another tenant":
    case "operator certificate of the right tenant":
      return service === "agent" ? status.PERMISSION_DENIED : undefined;
  }
}

/** A CA-signed client certificate with CN and O but no role extension. */
async function certificateWithoutRole(f: ApiFixture): Promise<ClientCert> {
  const keys = generateEd25519KeyPair();
  const publicKey = await crypto.subtle.importKey(
    "spki",
    new x509.PublicKey(keys.publicKeyPem).rawData,
    { name: "Ed25519" },
    true,
    ["verify"],
  );
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: "CN=nobody, O=default",
    issuer: f.identity.ca.cert.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    publicKey,
    signingKey: f.identity.ca.signingKey,
    signingAlgorithm: { name: "Ed25519" },
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  return { certPem: cert.toString("pem"), keyPem: keys.privateKeyPem };
}

function check(outcome: CallOutcome, expected: Expect, tenant: string, what: string): void {
  if (typeof expected === "number") {
    assert.equal(
      status[outcome.code],
      status[expected],
      `${what}: expected ${status[expected]}, got ${status[outcome.code]} (${outcome.details})`,
    );
    return;
  }
  assert.equal(
    outcome.code,
    status.OK,
    `${what}: expected OK, got ${status[outcome.code]} (${outcome.details})`,
  );
  expected.ok(outcome.value, tenant);
}

describe("authorization matrix", () => {
  let f: ApiFixture;
  const clients = new Map<Credential, { operator: Client; agent: Client }>();

  before(async () => {
    f = await startApiFixture({
      groupsText: JSON.stringify({
        [OWN]: { batch2: { template: "web", size: 1 } },
        [OTHER]: { jobs: { template: "web", size: 1 } },
      }),
    });
    await f.issueAgentNonce({ id: OWN_INSTANCE, tenant: OWN, providerId: "i-own" });
    await f.issueAgentNonce({
      id: OTHER_INSTANCE,
      tenant: OTHER,
      group: "jobs",
      providerId: "i-other",
    });
    f.db
      .prepare("INSERT INTO decisions (instance_id, at, decision, reason) VALUES (?, ?, ?, ?)")
      .run(OWN_INSTANCE, Date.now(), "create", "scale_up");

    const otherPki = await createTestPki("another-cluster");
    const certs: Record<Credential, ClientCert | undefined> = {
      "no client certificate": undefined,
      "certificate from another CA": await issueClientCert(otherPki.ca, {
        clientId: "intruder",
        tenant: OWN,
        role: "operator",
      }),
      "expired certificate": await f.clientCert({
        clientId: "old",
        tenant: OWN,
        role: "operator",
        ttlMs: 60_000,
        now: new Date(Date.now() - 2 * 3_600_000),
      }),
      "certificate without an identity": await certificateWithoutRole(f),
      "agent certificate": await f.clientCert({
        clientId: OWN_INSTANCE,
        tenant: OWN,
        role: "agent",
      }),
      "operator certificate of another tenant": await f.clientCert({
        clientId: "opr-other",
        tenant: OTHER,
        role: "operator",
      }),
      "operator certificate of the right tenant": await f.clientCert({
        clientId: "opr-own",
        tenant: OWN,
        role: "operator",
      }),
    };
    for (const credential of CREDENTIALS) {
      const cert = certs[credential];
      clients.set(credential, { operator: f.operator(cert), agent: f.agent(cert) });
    }
  });
  after(() => f.close());

  it("has a row for every Operator and Agent RPC", () => {
    assert.deepEqual(Object.keys(OPERATOR_ROWS).sort(), Object.keys(OperatorServiceService).sort());
    assert.deepEqual(Object.keys(AGENT_ROWS).sort(), Object.keys(AgentServiceService).sort());
  });

  /** Runs a call and returns its outcome and how many handlers ran for its method meanwhile. */
  async function run(client: Client, def: MethodDefinition<unknown, unknown>, request?: object) {
    const before = f.logger.lines.length;
    const outcome = await invoke(client, def, request);
    const handled = f.logger.lines
      .slice(before)
      .filter((l) => l.msg === "RPC handled" && l.attrs?.method === def.path).length;
    return { outcome, handled };
  }

  for (const credential of CREDENTIALS) {
    describe(credential, () => {
      const tenant = credential === "operator certificate of another tenant" ? OTHER : OWN;

      for (const [name, row] of Object.entries(OPERATOR_ROWS)) {
        const def = OperatorServiceService[name as keyof typeof OperatorServiceService];
        it(`Operator ${name}`, async () => {
          const { operator } = clients.get(credential)!;
          const { outcome, handled } = await run(
            operator,
            def as MethodDefinition<unknown, unknown>,
            row.request,
          );
          const refused = byCredential(credential, "operator");
          if (refused !== undefined) {
            check(outcome, refused, tenant, name);
            assert.equal(handled, 0, "the handler never ran");
            return;
          }
          check(outcome, tenant === OWN ? row.own : row.other, tenant, name);
          // A cancelled stream logs its end asynchronously, so only unary calls are counted here.
          if (!def.responseStream) assert.equal(handled, 1);
        });
      }

      for (const [name, row] of Object.entries(AGENT_ROWS)) {
        const def = AgentServiceService[name as keyof typeof AgentServiceService];
        it(`Agent ${name}`, async () => {
          const { agent } = clients.get(credential)!;
          const { outcome } = await run(
            agent,
            def as MethodDefinition<unknown, unknown>,
            row.request,
          );
          check(outcome, byCredential(credential, "agent") ?? row.agent, tenant, name);
        });
      }
    });
  }

  it("left the owner's objects untouched by the other tenant", () => {
    // The other tenant's UpsertGroup created its own `batch`; the owner's groups are its own.
    const own = f.configStore.current().effective.groups.filter((g) => g.tenant === OWN);
    const other = f.configStore.current().effective.groups.filter((g) => g.tenant === OTHER);
    assert.deepEqual(
      own.map((g) => g.key),
      ["batch", "web"],
    );
    assert.deepEqual(
      other.map((g) => g.key),
      ["batch", "jobs"],
    );
  });
});
