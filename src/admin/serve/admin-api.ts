// SPDX-License-Identifier: Apache-2.0
/**
 * The admin HTTP API's route table: every admin operation of the Operator API client as a JSON
 * route (the reference's `GET /config/status`, `POST /config/refresh`, `POST /group/scale`, and
 * the rest in the same style), plus `/overview`, the dashboard's one-call view of the fleet. The
 * table is the single source of the server's routes and of the OpenAPI document. Shard results
 * have the same shape as the CLI's `--json` output.
 */
import { type ErrorCode, NstanceError } from "../../shared/errors.js";
import { VERSION } from "../../shared/version.js";
import { MAX_GROUP_SIZE } from "../commands/group-size.js";
import { instanceDetailsJson, instanceJson } from "../commands/instance-output.js";
import { configRefreshJson, configStatusJson, groupJson, shardResultsJson } from "../output.js";
import type { AdminService, CreateGroupRequest, ShardResult } from "../service/admin-service.js";
import { type ShardSelection, type ShardServer, selectShards } from "../service/shard-servers.js";
import { API_SCHEMAS, type JsonSchema, ref, shardResultsSchema } from "./api-schemas.js";
import type { ShardLeadership } from "./shard-leadership.js";

/** What the routes call. */
export interface AdminApiBackend {
  /** The shards of `--servers`. */
  servers: readonly ShardServer[];
  /** The Operator API client (an AdminService). */
  admin: Pick<
    AdminService,
    | "listGroups"
    | "groupStatus"
    | "createGroup"
    | "scaleGroup"
    | "deleteGroup"
    | "configStatus"
    | "refreshConfig"
    | "listInstances"
    | "instanceStatus"
  >;
  /** A shard's leader and servers from the bucket; absent when serve has no `--storage`. */
  leadership?: (shard: string, signal?: AbortSignal) => Promise<ShardLeadership>;
}

/** A request as a route sees it: query, parsed JSON body (POST) and a signal for the client. */
export interface ApiRequest {
  query: URLSearchParams;
  body: unknown;
  signal: AbortSignal;
}

/** A route's answer: HTTP status and JSON body. */
export interface ApiResponse {
  status: number;
  body: unknown;
}

/** A query parameter of a route. */
export interface QueryParam {
  name: string;
  required: boolean;
  type: "string" | "boolean";
  description: string;
}

/** Who may call a route: anyone, bearer-token holders, or (the OpenAPI document) either. */
export type RouteAccess = "public" | "token" | "docs";

/** One route of the API. */
export interface ApiRoute {
  method: "GET" | "POST";
  path: string;
  operationId: string;
  summary: string;
  access: RouteAccess;
  query: readonly QueryParam[];
  /** JSON Schema of the body (POST routes that take one). */
  requestBody?: JsonSchema;
  /** JSON Schema of a successful (200) body. */
  response: JsonSchema;
  handle(backend: AdminApiBackend, req: ApiRequest): Promise<ApiResponse>;
}

/** HTTP status for each error code (the Operator API's own `unauthenticated` is our 502). */
export const HTTP_STATUS_BY_ERROR_CODE: Readonly<Record<ErrorCode, number>> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  precondition_failed: 409,
  permission_denied: 403,
  unauthenticated: 502,
  unavailable: 503,
  deadline_exceeded: 504,
  resource_exhausted: 429,
  aborted: 409,
  cancelled: 503,
  internal: 500,
};

/** 200 when every shard succeeded; else the failing shards' status when they agree, else 502. */
export function shardResultsStatus(results: readonly ShardResult<unknown>[]): number {
  const statuses = new Set<number>();
  for (const r of results) if (!r.ok) statuses.add(HTTP_STATUS_BY_ERROR_CODE[r.error.code]);
  if (statuses.size === 0) return 200;
  return statuses.size === 1 ? [...statuses][0]! : 502;
}

function shardResults<T>(
  results: readonly ShardResult<T>[],
  key: string,
  toJson: (value: T) => unknown,
): ApiResponse {
  // Exactly the document `--json` prints, so scripts can move between the CLI and the API.
  return {
    status: shardResultsStatus(results),
    body: JSON.parse(shardResultsJson(results, key, toJson)) as unknown,
  };
}

/** A shard's leadership as JSON (`leadership`, `servers`). */
export function leadershipJson(l: ShardLeadership | undefined): Record<string, unknown> {
  return {
    leadership: l?.leader
      ? {
          leader_id: l.leader.leader_id,
          leader_addr: l.leader.leader_addr,
          term: l.leader.term,
          last_updated: l.leader.last_updated,
          released: l.leader.released,
        }
      : null,
    servers: (l?.servers ?? []).map((s) => ({
      id: s.id,
      role: s.role,
      term: s.term,
      version: s.version,
      updated_at: s.updatedAt,
      stale: s.stale,
    })),
  };
}

function invalid(message: string): NstanceError {
  return new NstanceError("invalid_argument", message);
}

/**
 * The shards a request addresses: `shard=<id>` or `all_shards=true`. Reads default to every
 * shard; a change needs one of the two unless there is only one shard.
 */
export function requestSelection(
  servers: readonly ShardServer[],
  query: URLSearchParams,
  mutating: boolean,
): ShardSelection {
  const shard = query.get("shard") ?? undefined;
  const all = query.get("all_shards");
  if (all !== null && all !== "true" && all !== "false") {
    throw invalid(`all_shards must be true or false, got "${all}"`);
  }
  if (shard !== undefined && all === "true") {
    throw invalid("shard and all_shards=true are mutually exclusive");
  }
  if (shard !== undefined) {
    selectShards(servers, { shard });
    return { shard };
  }
  if (all === "true" || !mutating) return { allShards: true };
  if (servers.length === 1) return { shard: servers[0]!.shard };
  throw invalid("choose the shards to change: shard=<id> or all_shards=true");
}

function requiredQuery(query: URLSearchParams, name: string): string {
  const v = query.get(name);
  if (v === null || v === "") throw invalid(`query parameter ${name} is required`);
  return v;
}

/** The body as an object with only the `allowed` keys; 400 otherwise. */
function bodyObject(body: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid("the request body must be a JSON object");
  }
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k))
      throw invalid(`unknown field "${k}" (allowed: ${allowed.join(", ")})`);
  }
  return body as Record<string, unknown>;
}

function stringField(o: Record<string, unknown>, key: string, required: true): string;
function stringField(o: Record<string, unknown>, key: string, required: false): string | undefined;
function stringField(o: Record<string, unknown>, key: string, required: boolean) {
  const v = o[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || (required && v === "")) {
    throw invalid(`"${key}" must be a${required ? " non-empty" : ""} string`);
  }
  return v;
}

function sizeField(o: Record<string, unknown>, key: string, fallback?: number): number {
  const v = o[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_GROUP_SIZE) {
    throw invalid(`"${key}" must be a whole number from 0 to ${MAX_GROUP_SIZE}`);
  }
  return v;
}

function varsField(o: Record<string, unknown>): Record<string, string> | undefined {
  const v = o.vars;
  if (v === undefined) return undefined;
  if (
    typeof v !== "object" ||
    v === null ||
    Array.isArray(v) ||
    Object.values(v).some((x) => typeof x !== "string")
  ) {
    throw invalid('"vars" must be an object of strings');
  }
  return v as Record<string, string>;
}

const SHARD_PARAMS: readonly QueryParam[] = [
  {
    name: "shard",
    required: false,
    type: "string",
    description: "The shard to address (one of --servers)",
  },
  {
    name: "all_shards",
    required: false,
    type: "boolean",
    description:
      "Address every shard. Reads address every shard by default; changes need shard or all_shards=true unless there is one shard",
  },
];

const param = (name: string, description: string, required = true): QueryParam => ({
  name,
  required,
  type: "string",
  description,
});

async function overview(b: AdminApiBackend, signal: AbortSignal): Promise<ApiResponse> {
  const all: ShardSelection = { allShards: true };
  const [groups, instances, leaderships] = await Promise.all([
    b.admin.listGroups(all, signal),
    b.admin.listInstances(all, undefined, signal),
    Promise.all(b.servers.map((s) => leadershipOf(b, s.shard, signal))),
  ]);
  return {
    status: 200,
    body: {
      generated_at: new Date().toISOString(),
      shards: b.servers.map((s, i) => {
        const g = groups.find((r) => r.shard === s.shard);
        const inst = instances.find((r) => r.shard === s.shard);
        const failed = [g, inst].find((r) => r && !r.ok);
        return {
          shard: s.shard,
          address: s.address,
          ok: !failed,
          ...(failed && !failed.ok
            ? { error: { code: failed.error.code, message: failed.error.detail } }
            : {}),
          ...leaderships[i],
          groups: g?.ok ? g.value.map(groupJson) : [],
          instances: inst?.ok ? inst.value.map(instanceJson) : [],
        };
      }),
    },
  };
}

async function leadershipOf(
  b: AdminApiBackend,
  shard: string,
  signal: AbortSignal,
): Promise<Record<string, unknown>> {
  if (!b.leadership) return leadershipJson(undefined);
  try {
    return leadershipJson(await b.leadership(shard, signal));
  } catch (err) {
    return {
      ...leadershipJson(undefined),
      leadership_error: err instanceof Error ? err.message : String(err),
    };
  }
}

/** A route that calls the selected shards and answers their results (the CLI's `--json`). */
interface ShardRouteSpec<T> {
  method: "GET" | "POST";
  path: string;
  operationId: string;
  summary: string;
  /** Query parameters besides `shard` and `all_shards`. */
  params?: readonly QueryParam[];
  requestBody?: JsonSchema;
  /** Key of each shard's value in the results, and its schema. */
  key: string;
  value: JsonSchema;
  /** Validates the request and calls the shards; POST routes change, GET routes read. */
  call: (
    admin: AdminApiBackend["admin"],
    selection: ShardSelection,
    req: ApiRequest,
  ) => Promise<ShardResult<T>[]>;
  toJson: (value: T) => unknown;
}

function shardRoute<T>(spec: ShardRouteSpec<T>): ApiRoute {
  return {
    method: spec.method,
    path: spec.path,
    operationId: spec.operationId,
    summary: spec.summary,
    access: "token",
    query: [...(spec.params ?? []), ...SHARD_PARAMS],
    ...(spec.requestBody ? { requestBody: spec.requestBody } : {}),
    response: shardResultsSchema(spec.key, spec.value),
    handle: async (b, req) => {
      const selection = requestSelection(b.servers, req.query, spec.method === "POST");
      return shardResults(await spec.call(b.admin, selection, req), spec.key, spec.toJson);
    },
  };
}

/** Every route of the API except the dashboard's static files. */
export const ADMIN_API_ROUTES: readonly ApiRoute[] = [
  {
    method: "GET",
    path: "/health",
    operationId: "getHealth",
    summary: "Liveness of the admin server itself (no shard is called)",
    access: "public",
    query: [],
    response: {
      type: "object",
      required: ["status", "version"],
      properties: { status: { const: "ok" }, version: { type: "string" } },
    },
    handle: async () => ({ status: 200, body: { status: "ok", version: VERSION } }),
  },
  {
    method: "GET",
    path: "/openapi.json",
    operationId: "getOpenApi",
    summary:
      "This OpenAPI 3.1 document (needs a token unless serve runs with --api-docs, as seed 004's api.docs_enabled)",
    access: "docs",
    query: [],
    response: { type: "object", required: ["openapi", "paths"] },
    // Answered by the server, which holds the document.
    handle: () => Promise.reject(new NstanceError("internal", "served by the HTTP server")),
  },
  {
    method: "GET",
    path: "/overview",
    operationId: "getOverview",
    summary:
      "Every shard with its leader and servers, groups (desired and actual) and instances: the dashboard's view",
    access: "token",
    query: [],
    response: {
      type: "object",
      required: ["generated_at", "shards"],
      properties: {
        generated_at: { type: "string", format: "date-time" },
        shards: { type: "array", items: ref("OverviewShard") },
      },
    },
    handle: (b, req) => overview(b, req.signal),
  },
  {
    method: "GET",
    path: "/shards",
    operationId: "listShards",
    summary: "The shards of --servers with their leader and servers, read from the bucket",
    access: "token",
    query: [],
    response: {
      type: "object",
      required: ["shards"],
      properties: { shards: { type: "array", items: ref("ShardView") } },
    },
    handle: async (b, req) => ({
      status: 200,
      body: {
        shards: await Promise.all(
          b.servers.map(async (s) => ({
            shard: s.shard,
            address: s.address,
            ...(await leadershipOf(b, s.shard, req.signal)),
          })),
        ),
      },
    }),
  },
  shardRoute({
    method: "GET",
    path: "/group/list",
    operationId: "listGroups",
    summary: "Groups (static and dynamic) with desired and actual sizes",
    key: "groups",
    value: { type: "array", items: ref("Group") },
    call: (a, sel, req) => a.listGroups(sel, req.signal),
    toJson: (gs) => gs.map(groupJson),
  }),
  shardRoute({
    method: "GET",
    path: "/group/status",
    operationId: "getGroupStatus",
    summary: "One group in detail",
    params: [param("group", "Group key")],
    key: "group",
    value: ref("Group"),
    call: (a, sel, req) => a.groupStatus(sel, requiredQuery(req.query, "group"), req.signal),
    toJson: groupJson,
  }),
  shardRoute({
    method: "POST",
    path: "/group/create",
    operationId: "createGroup",
    summary: "Create a dynamic group (fails where the group already exists)",
    requestBody: ref("CreateGroupRequest"),
    key: "group",
    value: ref("Group"),
    call: (a, sel, req) => {
      const o = bodyObject(req.body, Object.keys(API_SCHEMAS.CreateGroupRequest.properties));
      const instanceType = stringField(o, "instance_type", false);
      const subnetPool = stringField(o, "subnet_pool", false);
      const vars = varsField(o);
      const group: CreateGroupRequest = {
        key: stringField(o, "group", true),
        template: stringField(o, "template", true),
        size: sizeField(o, "size", 0),
        ...(instanceType !== undefined ? { instanceType } : {}),
        ...(subnetPool !== undefined ? { subnetPool } : {}),
        ...(vars !== undefined ? { vars } : {}),
      };
      return a.createGroup(sel, group, req.signal);
    },
    toJson: groupJson,
  }),
  shardRoute({
    method: "POST",
    path: "/group/scale",
    operationId: "scaleGroup",
    summary: "Set an existing group's desired size; the reconciler does the rest",
    requestBody: ref("ScaleGroupRequest"),
    key: "group",
    value: ref("Group"),
    call: (a, sel, req) => {
      const o = bodyObject(req.body, Object.keys(API_SCHEMAS.ScaleGroupRequest.properties));
      const key = stringField(o, "group", true);
      return a.scaleGroup(sel, key, sizeField(o, "size"), req.signal);
    },
    toJson: groupJson,
  }),
  shardRoute({
    method: "POST",
    path: "/group/delete",
    operationId: "deleteGroup",
    summary: "Delete a dynamic group (or a static group's dynamic overrides); its instances drain",
    requestBody: ref("GroupKeyRequest"),
    key: "group",
    value: { type: "object", required: ["key"], properties: { key: { type: "string" } } },
    call: (a, sel, req) => {
      const o = bodyObject(req.body, Object.keys(API_SCHEMAS.GroupKeyRequest.properties));
      return a.deleteGroup(sel, stringField(o, "group", true), req.signal);
    },
    toJson: (v) => v,
  }),
  shardRoute({
    method: "GET",
    path: "/config/status",
    operationId: "getConfigStatus",
    summary: "The static config object each shard has loaded",
    key: "config",
    value: ref("ConfigStatus"),
    call: (a, sel, req) => a.configStatus(sel, req.signal),
    toJson: configStatusJson,
  }),
  shardRoute({
    method: "POST",
    path: "/config/refresh",
    operationId: "refreshConfig",
    summary: "Make the shards reload their config and dynamic groups from storage now",
    key: "config",
    value: ref("ConfigRefresh"),
    call: (a, sel, req) => a.refreshConfig(sel, req.signal),
    toJson: configRefreshJson,
  }),
  shardRoute({
    method: "GET",
    path: "/instance/list",
    operationId: "listInstances",
    summary: "Instances with status, health, age and last report, oldest first",
    params: [param("group", "Only this group's instances", false)],
    key: "instances",
    value: { type: "array", items: ref("Instance") },
    call: (a, sel, req) => a.listInstances(sel, req.query.get("group") || undefined, req.signal),
    toJson: (is) => is.map(instanceJson),
  }),
  shardRoute({
    method: "GET",
    path: "/instance/status",
    operationId: "getInstanceStatus",
    summary:
      "One instance's provider status and last report, with every decision recorded about it (reason and evidence), oldest first",
    params: [param("instance_id", "Instance ID")],
    key: "instance",
    value: ref("InstanceDetails"),
    call: (a, sel, req) =>
      a.instanceStatus(sel, requiredQuery(req.query, "instance_id"), req.signal),
    toJson: instanceDetailsJson,
  }),
];
