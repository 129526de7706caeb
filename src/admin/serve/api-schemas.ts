// SPDX-License-Identifier: Apache-2.0
/**
 * JSON Schemas (2020-12, as OpenAPI 3.1 uses) of the admin HTTP API's bodies, referenced from the
 * route table and collected under `components.schemas` of the OpenAPI document. Keys are
 * snake_case, as in the CLI's `--json` output.
 */

/** A JSON Schema object. */
export type JsonSchema = Record<string, unknown>;

/** `$ref` to a schema under `components.schemas`. */
export function ref(name: keyof typeof API_SCHEMAS): JsonSchema {
  return { $ref: `#/components/schemas/${name}` };
}

const timestamp = (description: string): JsonSchema => ({
  type: ["string", "null"],
  format: "date-time",
  description,
});

/** The named schemas of the API. */
export const API_SCHEMAS = {
  Error: {
    type: "object",
    required: ["code", "message"],
    properties: {
      code: {
        type: "string",
        description: "invalid_argument, not_found, unauthenticated, unavailable, …",
      },
      message: { type: "string" },
    },
  },
  ErrorResponse: {
    type: "object",
    required: ["error"],
    properties: { error: { $ref: "#/components/schemas/Error" } },
  },
  Group: {
    type: "object",
    required: ["key", "tenant", "template", "size", "actual_size", "is_static", "etag"],
    properties: {
      key: { type: "string" },
      tenant: { type: "string" },
      template: { type: "string" },
      size: { type: "integer", minimum: 0, description: "Desired size" },
      actual_size: {
        type: "integer",
        minimum: 0,
        description: "Active managed instances with a provider ID",
      },
      instance_type: { type: "string" },
      subnet_pool: { type: "string" },
      vars: { type: "object", additionalProperties: { type: "string" } },
      is_static: { type: "boolean" },
      etag: { type: "string" },
      provider_ids: { type: "array", items: { type: "string" } },
    },
  },
  ConfigStatus: {
    type: "object",
    required: ["etag", "size"],
    properties: {
      etag: { type: "string" },
      size: { type: "integer", description: "Bytes" },
      last_modified: timestamp("When storage last changed the object"),
    },
  },
  ConfigRefresh: {
    type: "object",
    required: ["updated", "prev_etag", "etag"],
    properties: {
      updated: { type: "boolean" },
      prev_etag: { type: "string" },
      etag: { type: "string" },
    },
  },
  Instance: {
    type: "object",
    required: ["instance_id", "group", "status", "health", "age_seconds"],
    properties: {
      instance_id: { type: "string" },
      tenant: { type: "string" },
      group: { type: "string" },
      on_demand: { type: "boolean" },
      status: { type: "string", description: "pending, running, draining, deleting, deleted, …" },
      provider_instance_id: { type: "string" },
      created_at: timestamp("When the server created the instance"),
      registered_at: timestamp("When the agent registered"),
      last_report_at: timestamp("The last health report"),
      health: { type: "string", enum: ["healthy", "unhealthy", "unknown"] },
      age_seconds: { type: "integer", minimum: 0 },
    },
  },
  InstanceDetails: {
    type: "object",
    required: ["instance_id", "status", "history"],
    properties: {
      instance_id: { type: "string" },
      tenant: { type: "string" },
      status: { type: "string", description: "The provider status as last cached" },
      provider_instance_id: { type: "string" },
      created_at: timestamp("When the server created the instance"),
      last_seen: timestamp("The last health report"),
      history: {
        type: "array",
        description: "Every decision recorded about the instance, oldest first",
        items: { $ref: "#/components/schemas/Decision" },
      },
    },
  },
  Decision: {
    type: "object",
    required: ["decision", "reason", "evidence"],
    properties: {
      at: timestamp("When the decision was taken"),
      decision: { type: "string", description: "create, replace, drain, delete, …" },
      reason: { type: "string", description: "unhealthy, expired, scale_down, …" },
      evidence: { type: "object", additionalProperties: { type: "string" } },
    },
  },
  Leadership: {
    type: ["object", "null"],
    description: "The shard's leader lockfile; null before the first election or without storage",
    required: ["leader_id", "leader_addr", "term", "last_updated", "released"],
    properties: {
      leader_id: { type: "string" },
      leader_addr: { type: "string" },
      term: { type: "integer" },
      last_updated: { type: "string", format: "date-time" },
      released: { type: "boolean" },
    },
  },
  Server: {
    type: "object",
    required: ["id", "role", "term", "stale"],
    properties: {
      id: { type: "string" },
      role: { type: "string", enum: ["leader", "standby"] },
      term: { type: "integer" },
      version: { type: "string" },
      updated_at: { type: "string" },
      stale: { type: "boolean", description: "The heartbeat is older than its TTL" },
    },
  },
  ShardView: {
    type: "object",
    required: ["shard", "address", "leadership", "servers"],
    properties: {
      shard: { type: "string" },
      address: { type: "string", description: "Operator API address" },
      leadership: { $ref: "#/components/schemas/Leadership" },
      servers: { type: "array", items: { $ref: "#/components/schemas/Server" } },
      leadership_error: { type: "string", description: "Why the bucket could not be read" },
    },
  },
  OverviewShard: {
    type: "object",
    required: ["shard", "address", "ok", "leadership", "servers", "groups", "instances"],
    properties: {
      shard: { type: "string" },
      address: { type: "string" },
      ok: { type: "boolean", description: "Both Operator API reads succeeded" },
      error: { $ref: "#/components/schemas/Error" },
      leadership: { $ref: "#/components/schemas/Leadership" },
      servers: { type: "array", items: { $ref: "#/components/schemas/Server" } },
      leadership_error: { type: "string" },
      groups: { type: "array", items: { $ref: "#/components/schemas/Group" } },
      instances: { type: "array", items: { $ref: "#/components/schemas/Instance" } },
    },
  },
  ScaleGroupRequest: {
    type: "object",
    required: ["group", "size"],
    additionalProperties: false,
    properties: {
      group: { type: "string", minLength: 1 },
      size: { type: "integer", minimum: 0, maximum: 2_147_483_647 },
    },
  },
  CreateGroupRequest: {
    type: "object",
    required: ["group", "template"],
    additionalProperties: false,
    properties: {
      group: { type: "string", minLength: 1 },
      template: { type: "string", minLength: 1 },
      size: { type: "integer", minimum: 0, maximum: 2_147_483_647, default: 0 },
      instance_type: { type: "string" },
      subnet_pool: { type: "string" },
      vars: { type: "object", additionalProperties: { type: "string" } },
    },
  },
  GroupKeyRequest: {
    type: "object",
    required: ["group"],
    additionalProperties: false,
    properties: { group: { type: "string", minLength: 1 } },
  },
} satisfies Record<string, JsonSchema>;

/**
 * A per-shard result list, as the CLI prints with `--json`: each entry carries `key` when the
 * shard succeeded and `error` when it failed.
 */
export function shardResultsSchema(key: string, value: JsonSchema): JsonSchema {
  return {
    type: "object",
    required: ["results"],
    properties: {
      results: {
        type: "array",
        items: {
          type: "object",
          required: ["shard", "address", "ok"],
          properties: {
            shard: { type: "string" },
            address: { type: "string" },
            ok: { type: "boolean" },
            [key]: value,
            error: ref("Error"),
          },
        },
      },
    },
  };
}
