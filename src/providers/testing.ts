// SPDX-License-Identifier: Apache-2.0
/** Test helpers for provider tests (never imported by non-test code). */
import { newInstanceId } from "./instance-id.js";
import type { CreateInstanceRequest, LbConfig } from "./provider.js";

/** A complete create request with a fresh instance ID; override any field. */
export function testCreateRequest(
  overrides: Partial<CreateInstanceRequest> = {},
): CreateInstanceRequest {
  const kind = overrides.instanceKind ?? "tst";
  return {
    clusterId: "test-cluster",
    shard: "shard-a",
    tenant: "default",
    group: "web",
    template: "test",
    instanceKind: kind,
    instanceId: newInstanceId(kind),
    instanceType: "t3.small",
    subnetId: "subnet-1",
    userData: "#!/bin/sh\necho hello\n",
    nonce: "nonce.jwt.value",
    caCertPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    args: {},
    tags: {},
    ...overrides,
  };
}

/** An LB config with the given AWS target groups or Google NEGs. */
export function testLbConfig(overrides: Partial<LbConfig> = {}): LbConfig {
  return {
    provider: "fake",
    targetGroups: [],
    networkEndpointGroups: [],
    frontends: [],
    ...overrides,
  };
}

/** One request as the canned server saw it. */
export interface CannedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  /** The raw body. */
  raw: Buffer;
  /** The body parsed as JSON or form data (`undefined` when empty or neither). */
  body: unknown;
}

/** What the canned server answers. */
export interface CannedReply {
  status?: number;
  body?: unknown;
}

/** A local HTTP server (127.0.0.1, port 0) that records requests and answers from a function. */
export async function startCannedServer(
  respond: (req: CannedRequest) => CannedReply | Promise<CannedReply>,
): Promise<{ url: string; requests: CannedRequest[]; close(): Promise<void> }> {
  const { createServer } = await import("node:http");
  const requests: CannedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const url = new URL(req.url ?? "/", "http://localhost");
      const type = String(req.headers["content-type"] ?? "");
      let body: unknown;
      if (raw.length > 0 && type.includes("json")) body = JSON.parse(raw.toString("utf8"));
      else if (raw.length > 0 && type.includes("x-www-form-urlencoded")) {
        body = Object.fromEntries(new URLSearchParams(raw.toString("utf8")));
      }
      const recorded: CannedRequest = {
        method: req.method ?? "",
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        headers: req.headers,
        raw,
        body,
      };
      requests.push(recorded);
      Promise.resolve()
        .then(() => respond(recorded))
        .then(
          (reply) => {
            res.writeHead(reply.status ?? 200, { "content-type": "application/json" });
            res.end(reply.body === undefined ? "" : JSON.stringify(reply.body));
          },
          (err: unknown) => {
            res.writeHead(599, { "content-type": "text/plain" });
            res.end(String(err));
          },
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
