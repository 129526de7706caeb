// SPDX-License-Identifier: Apache-2.0
// The Registration service's per-address budget over real gRPC: calls beyond the burst are
// refused with RESOURCE_EXHAUSTED (and a retry pushback) before the service runs.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServiceError,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import {
  type RegisterAgentRequest,
  RegistrationServiceClient,
  RegistrationServiceService,
} from "../../../protocol/gen/nstance/v1/registration.js";
import { silentLogger } from "../../../shared/logger.js";
import { RateLimiter } from "../../../shared/rate-limiter.js";
import {
  DEFAULT_REGISTRATION_RATE_LIMIT,
  peerAddress,
  RETRY_PUSHBACK_KEY,
  rateLimitRegistration,
} from "./registration-rate-limit.js";

describe("peerAddress", () => {
  const cases: Array<[string, string]> = [
    ["127.0.0.1:5678", "127.0.0.1"],
    ["::1:5678", "::1"],
    ["2001:db8::7:443", "2001:db8::7"],
    ["[2001:db8::7]:443", "2001:db8::7"],
    ["::ffff:10.0.0.1:80", "::ffff:10.0.0.1"],
    ["unknown", "unknown"],
  ];
  for (const [peer, address] of cases) {
    it(`${peer} → ${address}`, () => assert.equal(peerAddress(peer), address));
  }
});

describe("rateLimitRegistration", () => {
  const server = new Server();
  let client: RegistrationServiceClient;
  let served = 0;
  const request: RegisterAgentRequest = {
    registrationNonceJwt: "x",
    publicKeyPem: Buffer.alloc(0),
    privateIpv4: "",
    privateIpv6: "",
    hostname: "",
  };

  before(async () => {
    const ok = { clientCertificatePem: Buffer.from("cert"), expiresAt: undefined };
    const impl = rateLimitRegistration(
      {
        registerAgent: (_call, cb) => {
          served++;
          cb(null, ok);
        },
        registerOperator: (_call, cb) => {
          served++;
          cb(null, ok);
        },
      },
      new RateLimiter({ limit: { burst: 3, perSecond: 0.01 } }),
      silentLogger,
    );
    server.addService(RegistrationServiceService, impl as unknown as UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    client = new RegistrationServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  });
  after(() => {
    client?.close();
    server.forceShutdown();
  });

  const call = (i: number) =>
    new Promise<{ err: ServiceError | null }>((resolve) => {
      const cb = (err: ServiceError | null) => resolve({ err });
      const opts = { deadline: Date.now() + 30_000 };
      if (i % 2 === 0) client.registerAgent(request, new Metadata(), opts, cb);
      else client.registerOperator(request, new Metadata(), opts, cb);
    });

  it("serves the burst, then refuses both methods with RESOURCE_EXHAUSTED before the service runs", async () => {
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await call(i));
    assert.deepEqual(
      results.map((r) => r.err?.code ?? status.OK),
      [status.OK, status.OK, status.OK, status.RESOURCE_EXHAUSTED, status.RESOURCE_EXHAUSTED],
    );
    assert.equal(served, 3);
    const refused = results[3]!.err!;
    assert.match(refused.details, /too many registration calls from 127\.0\.0\.1; retry in \d+ s/);
    const pushback = Number(refused.metadata.get(RETRY_PUSHBACK_KEY)[0]);
    assert.ok(pushback > 0 && pushback <= 100_000, `pushback ${pushback} ms`);
  });

  it("has a default generous enough for a fleet behind one NAT address (bench: ~2,200 calls)", () => {
    assert.ok(DEFAULT_REGISTRATION_RATE_LIMIT.burst >= 2_200);
    assert.ok(DEFAULT_REGISTRATION_RATE_LIMIT.perSecond >= 10);
  });
});
