// SPDX-License-Identifier: Apache-2.0
// Registration under concurrency with hostile tokens: per run, several agent nonces each get a
// burst of concurrent attempts (fresh keys, one reused key, invalid keys, tampered, truncated,
// unsigned, expired, foreign and wrong-kind tokens), operator nonces race different keys, and the
// server's clock may jump past the nonces' expiry in the middle. Exactly one registration wins
// per nonce (in the race, or afterwards when the race had no valid attempt or expired), every
// loser gets the documented status, and nothing but a winner is recorded.
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, describe, it } from "node:test";
import { type ServiceError, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { getInstance } from "../../src/db/instances-table.js";
import { generateEd25519KeyPair } from "../../src/pki/ed25519-keys.js";
import type {
  RegisterAgentRequest,
  RegisterAgentResponse,
  RegistrationServiceClient,
} from "../../src/protocol/gen/nstance/v1/registration.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { type ApiFixture, CLUSTER_ID, call, SHARD, startApiFixture } from "../api/api-fixture.js";
import { fuzzParameters, fuzzRuns } from "./fuzz-runs.js";

const RUNS = 25;
/** Registration calls one fixture takes before a fresh one (its rate limit allows 2,500 at once). */
const CALLS_PER_FIXTURE = 1_500;
const HOUR_MS = 3_600_000;

/** What one attempt sends. */
const ATTEMPT_KINDS = [
  "fresh-key",
  "shared-key",
  "invalid-key",
  "tampered-signature",
  "tampered-payload",
  "truncated",
  "unsigned",
  "expired",
  "other-cluster",
  "operator-kind",
  "garbage",
] as const;
type AttemptKind = (typeof ATTEMPT_KINDS)[number];
/** Attempts that carry the real nonce and a usable key: these may win. */
const MAY_WIN: ReadonlySet<AttemptKind> = new Set(["fresh-key", "shared-key"]);

type Result =
  | { ok: true; res: RegisterAgentResponse }
  | { ok: false; code: status; details: string };

function register(
  client: RegistrationServiceClient,
  kind: "agent" | "operator",
  req: RegisterAgentRequest,
): Promise<Result> {
  return call<RegisterAgentResponse>((m, o, cb) =>
    kind === "agent" ? client.registerAgent(req, m, o, cb) : client.registerOperator(req, m, o, cb),
  ).then(
    (res) => ({ ok: true as const, res }),
    (err: ServiceError) => ({ ok: false as const, code: err.code, details: err.details }),
  );
}

/** Replaces the character at `fraction` of part `part` (0 header, 1 payload, 2 signature). */
function tamper(jwt: string, part: number, fraction: number): string {
  const parts = jwt.split(".");
  const p = parts[part]!;
  // Not the last character: its low bits are padding, so changing it may not change the bytes.
  const i = Math.min(p.length - 2, Math.floor(fraction * (p.length - 1)));
  parts[part] = p.slice(0, i) + (p[i] === "A" ? "B" : "A") + p.slice(i + 1);
  return parts.join(".");
}

const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

const attempt = fc.record({
  kind: fc.constantFrom(...ATTEMPT_KINDS),
  fraction: fc.double({ min: 0, max: 1, noNaN: true }),
});
const scenario = fc.record({
  agents: fc.array(fc.array(attempt, { minLength: 1, maxLength: 8 }), {
    minLength: 1,
    maxLength: 4,
  }),
  operators: fc.array(fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 6 }), {
    maxLength: 2,
  }),
  /** Event-loop turns after which the server clock jumps two hours ahead; none when undefined. */
  expireAfterTurns: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.nat({ max: 30 }) },
  ),
});

describe("registration races with hostile tokens", () => {
  let fx: ApiFixture | undefined;
  let client: RegistrationServiceClient;
  let calls = 0;
  const clock = { offsetMs: 0 };
  after(async () => {
    await fx?.close();
  });

  /** The fixture, renewed before its registration rate limit could interfere. */
  const fixture = async (): Promise<ApiFixture> => {
    if (fx && calls < CALLS_PER_FIXTURE) return fx;
    await fx?.close();
    fx = await startApiFixture({ ctx: { now: () => Date.now() + clock.offsetMs } });
    client = fx.registration();
    calls = 0;
    return fx;
  };

  it(`exactly one winner per nonce, the right status for everyone else (${fuzzRuns(RUNS)} runs)`, async (t) => {
    let seq = 0;
    const tally = { won: 0, wonLater: 0, refused: new Map<string, number>() };
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        const f = await fixture();
        clock.offsetMs = 0;
        const run = ++seq;
        const pending: Array<Promise<void>> = [];
        const launch = (p: Promise<Result>, check: (r: Result) => void) => {
          calls++;
          pending.push(p.then(check));
        };
        const refused = (r: Result, allowed: status[], what: string): void => {
          assert.ok(!r.ok, `${what} must not register`);
          assert.ok(
            allowed.includes(r.code),
            `${what}: ${status[r.code]} (${r.details}), want ${allowed.map((c) => status[c])}`,
          );
          tally.refused.set(status[r.code]!, (tally.refused.get(status[r.code]!) ?? 0) + 1);
        };

        // Agent nonces, each under a burst of concurrent attempts.
        const agents = await Promise.all(
          sc.agents.map(async (attempts, a) => {
            const id = `race${run}x${a}`;
            const nonce = await f.issueAgentNonce({ id });
            const shared = generateEd25519KeyPair();
            const winners: string[] = [];
            for (const { kind, fraction } of attempts) {
              const req = await agentRequest(f, kind, fraction, { id, nonce, shared });
              launch(register(client, "agent", req), (r) => {
                if (r.ok) {
                  assert.ok(MAY_WIN.has(kind), `${kind} registered`);
                  winners.push(req.publicKeyPem.toString());
                } else if (MAY_WIN.has(kind)) {
                  refused(r, [status.UNAUTHENTICATED], `${kind} losing`);
                } else if (kind === "invalid-key") {
                  refused(r, [status.INVALID_ARGUMENT, status.UNAUTHENTICATED], kind);
                } else if (kind === "other-cluster") {
                  // Expiry is checked first: once the clock jumped, it is UNAUTHENTICATED.
                  const expired = sc.expireAfterTurns !== undefined ? [status.UNAUTHENTICATED] : [];
                  refused(r, [status.INVALID_ARGUMENT, ...expired], kind);
                } else {
                  refused(r, [status.UNAUTHENTICATED], kind);
                }
              });
            }
            return { id, nonce, winners, anyValid: attempts.some((x) => MAY_WIN.has(x.kind)) };
          }),
        );

        // Operator nonces: different keys race; retries with the winning key also succeed.
        const operators = sc.operators.map((keys, o) => {
          const pairs = [0, 1, 2].map(() => generateEd25519KeyPair());
          const bound = new Set<string>();
          const nonce = f.mintNonce({
            kind: "operator",
            subject: CLUSTER_ID,
            shard: "",
            group: "",
            tenant: `t${run}x${o}`,
          });
          for (const k of keys) {
            launch(
              nonce.then((n) =>
                register(client, "operator", {
                  registrationNonceJwt: n,
                  publicKeyPem: Buffer.from(pairs[k]!.publicKeyPem),
                  privateIpv4: "",
                  privateIpv6: "",
                  hostname: "",
                }),
              ),
              (r) => {
                if (r.ok) bound.add(pairs[k]!.publicKeyPem);
                else refused(r, [status.UNAUTHENTICATED], "operator key race loser");
              },
            );
          }
          return bound;
        });

        if (sc.expireAfterTurns !== undefined) {
          for (let i = 0; i < sc.expireAfterTurns; i++) await new Promise(setImmediate);
          clock.offsetMs = 2 * HOUR_MS;
        }
        await Promise.all(pending);
        clock.offsetMs = 0;

        for (const bound of operators) {
          assert.ok(bound.size <= 1, `an operator nonce bound to ${bound.size} keys`);
          if (sc.expireAfterTurns === undefined) assert.equal(bound.size, 1);
        }
        for (const a of agents) {
          assert.ok(a.winners.length <= 1, `${a.id}: ${a.winners.length} winners`);
          if (a.anyValid && sc.expireAfterTurns === undefined) {
            assert.equal(a.winners.length, 1, `${a.id}: a valid attempt must win`);
          }
          let winner = a.winners[0];
          if (winner === undefined) {
            // Nothing in the race may have spent the nonce: it still registers once.
            const keys = generateEd25519KeyPair();
            const later = await register(
              client,
              "agent",
              await agentRequest(f, "shared-key", 0, { id: a.id, nonce: a.nonce, shared: keys }),
            );
            calls++;
            assert.ok(later.ok, `${a.id}: the unspent nonce registers afterwards`);
            winner = keys.publicKeyPem;
            tally.wonLater++;
          } else tally.won++;
          // A replay now fails, and only the winner is on record.
          const replay = await register(
            client,
            "agent",
            await agentRequest(f, "fresh-key", 0, {
              id: a.id,
              nonce: a.nonce,
              shared: generateEd25519KeyPair(),
            }),
          );
          calls++;
          refused(replay, [status.UNAUTHENTICATED], "replay after the race");
          assert.equal(getInstance(f.db, a.id)?.instancePub, winner, `${a.id}: the winner's key`);
          const stored = await f.storage.get(instanceRecordKey(`shard/${SHARD}/`, "default", a.id));
          const record = JSON.parse(stored!.body.toString()) as { public_key_pem?: string };
          assert.equal(record.public_key_pem, winner, `${a.id}: the record names the winner`);
        }
      }),
      fuzzParameters(RUNS),
    );
    t.diagnostic(
      `won in the race ${tally.won}, afterwards ${tally.wonLater}; refusals ${JSON.stringify(Object.fromEntries(tally.refused))}`,
    );
  });
});

/** The request an attempt of `kind` sends for the agent nonce `nonce` of instance `id`. */
async function agentRequest(
  f: ApiFixture,
  kind: AttemptKind,
  fraction: number,
  o: { id: string; nonce: string; shared: { publicKeyPem: string } },
): Promise<RegisterAgentRequest> {
  const req = (token: string, pem: string | Buffer = generateEd25519KeyPair().publicKeyPem) => ({
    registrationNonceJwt: token,
    publicKeyPem: Buffer.from(pem),
    privateIpv4: "10.9.8.7",
    privateIpv6: "",
    hostname: o.id,
  });
  switch (kind) {
    case "fresh-key":
      return req(o.nonce);
    case "shared-key":
      return req(o.nonce, o.shared.publicKeyPem);
    case "invalid-key":
      return req(
        o.nonce,
        fraction < 0.5
          ? generateKeyPairSync("ec", { namedCurve: "P-256" })
              .publicKey.export({ type: "spki", format: "pem" })
              .toString()
          : "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
      );
    case "tampered-signature":
      return req(tamper(o.nonce, 2, fraction));
    case "tampered-payload":
      return req(tamper(o.nonce, 1, fraction));
    case "truncated":
      return req(o.nonce.slice(0, Math.floor(fraction * (o.nonce.length - 1))));
    case "unsigned": {
      const [, payload] = o.nonce.split(".");
      return req(`${b64url({ alg: "none", typ: "JWT" })}.${payload}.`);
    }
    case "expired":
      return req(
        await f.mintNonce(
          { subject: o.id },
          { ttlMs: 60_000, now: new Date(Date.now() - 2 * HOUR_MS) },
        ),
      );
    case "other-cluster":
      return req(await f.mintNonce({ subject: o.id, clusterId: "another-cluster" }));
    case "operator-kind":
      return req(await f.mintNonce({ subject: o.id, kind: "operator" }));
    case "garbage":
      return req(fraction < 0.5 ? "" : "x".repeat(Math.ceil(fraction * 100_000)));
  }
}
