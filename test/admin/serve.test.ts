// SPDX-License-Identifier: Apache-2.0
// The admin HTTP API in process over real HTTPS (TLS 1.3, the self-signed certificate) with a
// stub Operator API client: bearer tokens read from files on every request (missing, wrong,
// rotated, removed, too open), per-address rate limits (429 + Retry-After), request validation
// and status mapping, the dashboard's static files, and the OpenAPI document (it parses, lists
// every route, its references resolve and live answers match its schemas).
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ADMIN_API_ROUTES,
  type AdminApiBackend,
  requestSelection,
} from "../../src/admin/serve/admin-api.js";
import { AdminHttpServer } from "../../src/admin/serve/admin-http-server.js";
import { loadDashboardAssets } from "../../src/admin/serve/dashboard-assets.js";
import { buildOpenApiDocument } from "../../src/admin/serve/openapi-document.js";
import { createSelfSignedCertificate } from "../../src/admin/serve/self-signed-certificate.js";
import { TokenFileAuth } from "../../src/admin/serve/token-file-auth.js";
import type { GroupInfo, ShardResult } from "../../src/admin/service/admin-service.js";
import { RemoteError } from "../../src/admin/service/remote-error.js";
import type { ShardSelection } from "../../src/admin/service/shard-servers.js";
import { NstanceError } from "../../src/shared/errors.js";
import type { RateLimit } from "../../src/shared/rate-limiter.js";
import { recordingLogger } from "../api/api-fixture.js";
import { type HttpsResult, httpsRequest } from "./serve-client.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON documents, indexed freely
type Json = any;

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_A2 = "token-a-rotated-fedcba9876543210";
const TOKEN_B = "token-b-0123456789abcdef";
const SERVERS = [
  { shard: "a", address: "localhost:1" },
  { shard: "b", address: "localhost:2" },
];

function group(key: string, size: number, actualSize: number): GroupInfo {
  return {
    key,
    tenant: "default",
    template: "web",
    size,
    instanceType: "",
    subnetPool: "",
    vars: {},
    isStatic: true,
    etag: `etag-${key}`,
    actualSize,
    providerIds: [],
  };
}

/** A stub Operator API client: shard a has group web, shard b none; calls are recorded. */
function stubBackend(calls: string[]): AdminApiBackend {
  const targets = (sel: ShardSelection) =>
    "allShards" in sel ? SERVERS : SERVERS.filter((s) => s.shard === sel.shard);
  const each = async <T>(sel: ShardSelection, fn: (shard: string) => T) =>
    targets(sel).map((s): ShardResult<T> => {
      try {
        return { ...s, ok: true, value: fn(s.shard) };
      } catch (err) {
        const e = err as NstanceError;
        return { ...s, ok: false, error: new RemoteError(`shard ${s.shard}`, s.address, e, 1000) };
      }
    });
  const web = (shard: string, size = 2) => {
    if (shard !== "a") throw new NstanceError("not_found", "group web not found");
    return group("web", size, 1);
  };
  const created = new Date("2025-01-02T03:04:05Z");
  return {
    servers: SERVERS,
    admin: {
      listGroups: (sel) => each(sel, (s) => (s === "a" ? [web(s)] : [])),
      groupStatus: (sel, key) =>
        each(sel, (s) => {
          calls.push(`groupStatus ${s} ${key}`);
          return web(s);
        }),
      createGroup: (sel, req) => each(sel, () => group(req.key, req.size, 0)),
      scaleGroup: (sel, key, size) =>
        each(sel, (s) => {
          calls.push(`scaleGroup ${s} ${key} ${size}`);
          return web(s, size);
        }),
      deleteGroup: (sel, key) => each(sel, () => ({ key })),
      configStatus: (sel) =>
        each(sel, () => ({ etag: "e1", lastModified: created, sizeBytes: 10 })),
      refreshConfig: (sel) => each(sel, () => ({ updated: true, prevEtag: "e1", etag: "e2" })),
      listInstances: (sel) =>
        each(sel, (s) =>
          s === "a"
            ? [
                {
                  instanceId: "web-1",
                  tenant: "default",
                  group: "web",
                  onDemand: false,
                  status: "running",
                  providerInstanceId: "nstance-agent-web-1",
                  createdAt: created,
                  registeredAt: created,
                  lastReportAt: undefined,
                  health: "healthy",
                  ageSeconds: 42,
                },
              ]
            : [],
        ),
      instanceStatus: (sel, id) =>
        each(sel, (s) => {
          if (s !== "a" || id !== "web-1") throw new NstanceError("not_found", `${id} not found`);
          return {
            instanceId: id,
            tenant: "default",
            status: "running",
            createdAt: created,
            lastSeen: undefined,
            providerInstanceId: "nstance-agent-web-1",
            history: [
              { at: created, decision: "create", reason: "scale_up", evidence: { size: "2" } },
            ],
          };
        }),
    },
    leadership: async (shard) => {
      if (shard === "b") throw new Error("bucket unreachable");
      return {
        leader: {
          leader_id: "s1",
          leader_addr: "localhost:8991",
          last_updated: "2025-01-02T03:04:05.000Z",
          term: 3,
          released: false,
        },
        servers: [
          { id: "s1", role: "leader", term: 3, version: "0.1.0", updatedAt: "x", stale: false },
        ],
      };
    },
  };
}

interface Running {
  url: string;
  ca: string;
  server: AdminHttpServer;
  logs: ReturnType<typeof recordingLogger>;
  calls: string[];
  get(path: string, token?: string): Promise<HttpsResult>;
  post(path: string, body: unknown, token?: string): Promise<HttpsResult>;
}

async function start(
  dir: string,
  opts: { rateLimit?: RateLimit; publicDocs?: boolean; files?: string[] } = {},
): Promise<Running> {
  const logs = recordingLogger();
  const calls: string[] = [];
  const cert = await createSelfSignedCertificate();
  const files = (opts.files ?? [join(dir, "a.token")]).map((path) => ({
    name: path.endsWith("b.token") ? "bee" : "a",
    path,
  }));
  const auth = new TokenFileAuth({ files, logger: logs });
  await auth.checkFiles();
  const server = new AdminHttpServer({
    bind: "127.0.0.1:0",
    tls: cert,
    auth,
    backend: stubBackend(calls),
    rateLimit: opts.rateLimit ?? { burst: 10_000, perSecond: 10_000 },
    ...(opts.publicDocs ? { publicDocs: true } : {}),
    dashboard: await loadDashboardAssets(),
    logger: logs,
  });
  await server.start();
  const url = server.url.replace(/\/$/, "");
  return {
    url,
    ca: cert.certPem,
    server,
    logs,
    calls,
    get: (path, token = TOKEN_A) => httpsRequest(`${url}${path}`, { ca: cert.certPem, token }),
    post: (path, body, token = TOKEN_A) =>
      httpsRequest(`${url}${path}`, {
        method: "POST",
        ca: cert.certPem,
        token,
        body: typeof body === "string" ? body : JSON.stringify(body),
      }),
  };
}

describe("admin HTTP API", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-serve-"));
    await writeFile(join(dir, "a.token"), `${TOKEN_A}\n`, { mode: 0o600 });
    await writeFile(join(dir, "b.token"), `${TOKEN_B}\n`, { mode: 0o600 });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("bearer tokens from files", () => {
    let s: Running;
    const tokenFile = () => join(dir, "rot.token");
    before(async () => {
      await writeFile(tokenFile(), TOKEN_A, { mode: 0o600 });
      s = await start(dir, { files: [tokenFile(), join(dir, "b.token")] });
    });
    after(async () => {
      await s.server.stop();
    });

    it("refuses a request without a token with 401 and a Bearer challenge", async () => {
      const r = await httpsRequest(`${s.url}/group/list`, { ca: s.ca });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.code, "unauthenticated");
      assert.equal(r.headers["www-authenticate"], 'Bearer realm="nstance-admin"');
    });

    it("refuses a wrong or malformed token and never logs it", async () => {
      const wrong = await s.get("/group/list", "not-the-token-0123456789");
      assert.equal(wrong.status, 401);
      assert.match(String(wrong.headers["www-authenticate"]), /error="invalid_token"/);
      const basic = await httpsRequest(`${s.url}/group/list`, {
        ca: s.ca,
        headers: { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` },
      });
      assert.equal(basic.status, 401);
      const logged = JSON.stringify(s.logs.lines);
      assert.match(logged, /wrong bearer token/);
      assert.doesNotMatch(logged, /not-the-token/);
    });

    it("accepts the token of any token file", async () => {
      assert.equal((await s.get("/group/list", TOKEN_A)).status, 200);
      assert.equal((await s.get("/group/list", TOKEN_B)).status, 200);
    });

    it("reads the files on every request: a rotated token works at once, the old one stops", async () => {
      await writeFile(tokenFile(), `${TOKEN_A2}\n`, { mode: 0o600 });
      assert.equal((await s.get("/group/list", TOKEN_A)).status, 401);
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 200);
      // A removed file's token is refused; the other file still works; the error is logged once.
      await unlink(tokenFile());
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 401);
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 401);
      assert.equal((await s.get("/group/list", TOKEN_B)).status, 200);
      const errors = s.logs.lines.filter((l) => l.msg.startsWith("Token file cannot be read"));
      assert.equal(errors.length, 1);
      await writeFile(tokenFile(), TOKEN_A2, { mode: 0o600 });
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 200);
    });

    it("warns when a token file is readable by group or others, again after a mode change", async () => {
      const count = () => s.logs.lines.filter((l) => /readable by group/.test(l.msg)).length;
      const before = count();
      await chmod(tokenFile(), 0o644);
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 200);
      assert.equal(count(), before + 1);
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 200);
      assert.equal(count(), before + 1, "warned once per mode change, not per request");
      await chmod(tokenFile(), 0o600);
      assert.equal((await s.get("/group/list", TOKEN_A2)).status, 200);
      assert.equal(count(), before + 1);
    });

    it("serves /health and the dashboard without a token, the API and OpenAPI only with one", async () => {
      const health = await httpsRequest(`${s.url}/health`, { ca: s.ca });
      assert.equal(health.status, 200);
      assert.equal(health.json.status, "ok");
      const page = await httpsRequest(`${s.url}/`, { ca: s.ca });
      assert.equal(page.status, 200);
      assert.match(String(page.headers["content-type"]), /text\/html/);
      assert.match(page.text, /<main id="main"/);
      assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
      assert.equal(page.headers["x-frame-options"], "DENY");
      const again = await httpsRequest(`${s.url}/`, {
        ca: s.ca,
        headers: { "if-none-match": String(page.headers.etag) },
      });
      assert.equal(again.status, 304);
      assert.equal((await httpsRequest(`${s.url}/app.js`, { ca: s.ca })).status, 200);
      assert.equal((await httpsRequest(`${s.url}/openapi.json`, { ca: s.ca })).status, 401);
      assert.equal((await s.get("/openapi.json", TOKEN_B)).status, 200);
    });
  });

  it("refuses to start with a missing, empty or short token file", async () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      ["missing.token", undefined, /ENOENT/],
      ["empty.token", "\n", /empty/],
      ["short.token", "abc", /at least 16 characters/],
    ];
    for (const [name, content, re] of cases) {
      const path = join(dir, name);
      if (content !== undefined) await writeFile(path, content, { mode: 0o600 });
      const auth = new TokenFileAuth({ files: [{ name, path }], logger: recordingLogger() });
      await assert.rejects(auth.checkFiles(), (err: Error) => {
        assert.match(err.message, re);
        assert.match(err.message, new RegExp(name));
        return true;
      });
    }
    const logs = recordingLogger();
    const open = join(dir, "open.token");
    await writeFile(open, TOKEN_A);
    await chmod(open, 0o644);
    await new TokenFileAuth({ files: [{ name: "open", path: open }], logger: logs }).checkFiles();
    assert.ok(logs.lines.some((l) => l.level === "warn" && /chmod 600/.test(l.msg)));
  });

  it("rate-limits each address: 429 with Retry-After beyond the burst, before authentication", async () => {
    const s = await start(dir, { rateLimit: { burst: 5, perSecond: 0.2 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await s.get("/group/list", "wrong-token-xxxxxxxx")).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
      const limited = await s.get("/group/list");
      assert.equal(limited.status, 429);
      assert.equal(limited.json.error.code, "resource_exhausted");
      const retry = Number(limited.headers["retry-after"]);
      assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 5, `Retry-After ${retry}`);
      // Static files and /health count too: one budget per address.
      assert.equal((await httpsRequest(`${s.url}/health`, { ca: s.ca })).status, 429);
      const warns = s.logs.lines.filter((l) => /exceed its budget/.test(l.msg));
      assert.equal(warns.length, 1, "one warning per episode, not per refusal");
    } finally {
      await s.server.stop();
    }
  });

  describe("routes", () => {
    let s: Running;
    before(async () => {
      s = await start(dir);
    });
    after(async () => {
      await s.server.stop();
    });

    it("scales a group on the given shard and answers the CLI's JSON shape", async () => {
      const r = await s.post("/group/scale?shard=a", { group: "web", size: 5 });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(
        {
          shard: r.json.results[0].shard,
          ok: r.json.results[0].ok,
          size: r.json.results[0].group.size,
        },
        { shard: "a", ok: true, size: 5 },
      );
      assert.ok(s.calls.includes("scaleGroup a web 5"));
    });

    it("refuses malformed changes with 400, 405, 413 and 415, before calling a shard", async () => {
      const before = s.calls.length;
      const cases: Array<[string, unknown, number, RegExp]> = [
        ["/group/scale?shard=a", { group: "web" }, 400, /"size" must be a whole number/],
        ["/group/scale?shard=a", { group: "web", size: -1 }, 400, /whole number/],
        ["/group/scale?shard=a", { group: "web", size: 1.5 }, 400, /whole number/],
        ["/group/scale?shard=a", { group: "", size: 1 }, 400, /"group" must be a non-empty/],
        ["/group/scale?shard=a", { group: "web", size: 1, zone: "x" }, 400, /unknown field "zone"/],
        ["/group/scale?shard=a", "{not json", 400, /not JSON/],
        ["/group/scale?shard=a", [1], 400, /JSON object/],
        ["/group/scale", { group: "web", size: 1 }, 400, /shard=<id> or all_shards=true/],
        [
          "/group/scale?shard=zz",
          { group: "web", size: 1 },
          400,
          /shard zz is not in the server list/,
        ],
        [
          "/group/scale?shard=a&all_shards=true",
          { group: "web", size: 1 },
          400,
          /mutually exclusive/,
        ],
        ["/group/scale?shard=a", "x".repeat(70_000), 413, /exceeds/],
      ];
      for (const [path, body, status, re] of cases) {
        const r = await s.post(path, body);
        assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 60)}: ${r.text}`);
        assert.match(r.json.error.message, re);
      }
      const form = await httpsRequest(`${s.url}/group/scale?shard=a`, {
        method: "POST",
        ca: s.ca,
        token: TOKEN_A,
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "group=web&size=1",
      });
      assert.equal(form.status, 415);
      const get = await s.get("/group/scale");
      assert.equal(get.status, 405);
      assert.equal(get.headers.allow, "POST");
      assert.equal((await s.get("/nope")).status, 404);
      assert.equal(s.calls.length, before, "no shard was called");
    });

    it("maps shard failures to HTTP statuses and still lists every shard", async () => {
      const missing = await s.get("/group/status?group=web&shard=b");
      assert.equal(missing.status, 404);
      assert.equal(missing.json.results[0].error.code, "not_found");
      const mixed = await s.get("/group/status?group=web");
      assert.equal(
        mixed.status,
        404,
        "a failing shard makes the whole answer fail, as the CLI's exit code",
      );
      assert.deepEqual(
        mixed.json.results.map((r: { shard: string; ok: boolean }) => [r.shard, r.ok]),
        [
          ["a", true],
          ["b", false],
        ],
      );
      const noParam = await s.get("/instance/status");
      assert.equal(noParam.status, 400);
      assert.match(noParam.json.error.message, /instance_id is required/);
    });

    it("gives the dashboard one overview of shards, leaders, groups and instances", async () => {
      const r = await s.get("/overview");
      assert.equal(r.status, 200);
      const [a, b] = r.json.shards;
      assert.equal(a.shard, "a");
      assert.equal(a.ok, true);
      assert.equal(a.leadership.leader_id, "s1");
      assert.equal(a.servers[0].role, "leader");
      assert.deepEqual(
        a.groups.map((g: { key: string; size: number; actual_size: number }) => [
          g.key,
          g.size,
          g.actual_size,
        ]),
        [["web", 2, 1]],
      );
      assert.equal(a.instances[0].instance_id, "web-1");
      assert.equal(a.instances[0].health, "healthy");
      assert.equal(b.leadership, null);
      assert.match(b.leadership_error, /bucket unreachable/);
    });
  });

  describe("OpenAPI document", () => {
    let s: Running;
    let doc: Json;
    before(async () => {
      s = await start(dir, { publicDocs: true });
      const r = await httpsRequest(`${s.url}/openapi.json`, { ca: s.ca });
      assert.equal(r.status, 200, "--api-docs serves the document without a token");
      doc = JSON.parse(r.text);
    });
    after(async () => {
      await s.server.stop();
    });

    it("is OpenAPI 3.1 with every route, unique operation IDs and resolvable references", () => {
      assert.equal(doc.openapi, "3.1.0");
      assert.equal(typeof doc.info.title, "string");
      assert.equal(typeof doc.info.version, "string");
      for (const r of ADMIN_API_ROUTES) {
        const op = doc.paths[r.path]?.[r.method.toLowerCase()];
        assert.ok(op, `${r.method} ${r.path} is documented`);
        assert.ok(op.responses["200"], `${r.path} documents 200`);
      }
      const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
        Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`),
      );
      assert.deepEqual(
        documented.sort(),
        ADMIN_API_ROUTES.map((r) => `${r.method} ${r.path}`).sort(),
        "nothing documented that is not served",
      );
      const ids = documented.map((d) => {
        const [m, p] = d.split(" ");
        return doc.paths[p!][m!.toLowerCase()].operationId as string;
      });
      assert.equal(new Set(ids).size, ids.length);
      const refs = JSON.stringify(doc).match(/"\$ref":"[^"]+"/g) ?? [];
      assert.ok(refs.length > 10);
      for (const r of refs) {
        const target = r.slice(8, -1);
        assert.ok(resolve(doc, target), `${target} resolves`);
      }
      assert.equal(doc.components.securitySchemes.bearerToken.scheme, "bearer");
      assert.deepEqual(doc.paths["/health"].get.security, []);
      assert.equal(doc.paths["/group/scale"].post.security, undefined, "the default: bearer");
      assert.ok(doc.paths["/group/scale"].post.responses["401"]);
    });

    it("matches what the server answers: every route's 200 body validates against its schema", async () => {
      const bodies: Record<string, unknown> = {
        "/group/create": { group: "api", template: "web", size: 1, vars: { a: "b" } },
        "/group/scale": { group: "web", size: 3 },
        "/group/delete": { group: "web" },
      };
      const query: Record<string, string> = {
        "/group/status": "?group=web&shard=a",
        "/instance/status": "?instance_id=web-1&shard=a",
      };
      for (const r of ADMIN_API_ROUTES) {
        const path = `${r.path}${query[r.path] ?? (r.method === "POST" ? "?shard=a" : "")}`;
        const res =
          r.method === "GET" ? await s.get(path) : await s.post(path, bodies[r.path] ?? "");
        assert.equal(res.status, 200, `${r.method} ${path}: ${res.text}`);
        const schema =
          doc.paths[r.path][r.method.toLowerCase()].responses["200"].content["application/json"]
            .schema;
        assert.deepEqual(validate(doc, schema, res.json, r.path), [], `${r.method} ${r.path}`);
        if (bodies[r.path]) {
          const reqSchema = doc.paths[r.path].post.requestBody.content["application/json"].schema;
          assert.deepEqual(validate(doc, reqSchema, bodies[r.path], "request"), []);
        }
      }
    });

    it("is what buildOpenApiDocument builds from the route table", () => {
      assert.deepEqual(
        doc,
        JSON.parse(JSON.stringify(buildOpenApiDocument(ADMIN_API_ROUTES, true))),
      );
    });
  });

  it("selects shards: reads default to all, changes need one unless there is only one", () => {
    const q = (s: string) => new URLSearchParams(s);
    assert.deepEqual(requestSelection(SERVERS, q(""), false), { allShards: true });
    assert.deepEqual(requestSelection(SERVERS, q("shard=b"), true), { shard: "b" });
    assert.deepEqual(requestSelection(SERVERS, q("all_shards=true"), true), { allShards: true });
    assert.deepEqual(requestSelection(SERVERS.slice(0, 1), q(""), true), { shard: "a" });
    assert.throws(() => requestSelection(SERVERS, q(""), true), /shard=<id> or all_shards=true/);
    assert.throws(() => requestSelection(SERVERS, q("all_shards=yes"), false), /true or false/);
  });
});
function resolve(doc: Json, ref: string): Json {
  if (!ref.startsWith("#/")) return undefined;
  return ref
    .slice(2)
    .split("/")
    .reduce((node: Json, key) => node?.[key], doc);
}

/** Checks `value` against the subset of JSON Schema the document uses; returns the problems. */
function validate(doc: Json, schema: Json, value: Json, path: string): string[] {
  if (schema.$ref) return validate(doc, resolve(doc, schema.$ref), value, path);
  const problems: string[] = [];
  const types: string[] = schema.type === undefined ? [] : [schema.type].flat();
  const typeOf = (v: unknown) =>
    v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;
  const t = typeOf(value);
  if (types.length > 0 && !types.includes(t) && !(t === "integer" && types.includes("number"))) {
    return [`${path}: ${t} is not ${types.join("|")}`];
  }
  if (schema.const !== undefined && value !== schema.const)
    problems.push(`${path}: not ${schema.const}`);
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: ${value} not in enum`);
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) problems.push(`${path}: < minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) problems.push(`${path}: > maximum`);
  }
  if (t === "object") {
    for (const k of schema.required ?? [])
      if (!(k in value)) problems.push(`${path}.${k}: missing`);
    for (const [k, v] of Object.entries(value)) {
      const sub = schema.properties?.[k] ?? schema.additionalProperties;
      if (sub === false) problems.push(`${path}.${k}: not allowed`);
      else if (sub && sub !== true) problems.push(...validate(doc, sub, v, `${path}.${k}`));
    }
  }
  if (t === "array" && schema.items) {
    for (const [i, v] of (value as unknown[]).entries()) {
      problems.push(...validate(doc, schema.items, v, `${path}[${i}]`));
    }
  }
  return problems;
}
