// SPDX-License-Identifier: Apache-2.0
/** The OpenAPI 3.1 document of the admin HTTP API, built from the route table. */
import { VERSION } from "../../shared/version.js";
import type { ApiRoute } from "./admin-api.js";
import { API_SCHEMAS, ref } from "./api-schemas.js";

/** Name of the bearer security scheme in the document. */
export const BEARER_SCHEME = "bearerToken";

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ref("ErrorResponse") } },
});

function operation(route: ApiRoute, publicDocs: boolean): Record<string, unknown> {
  const open = route.access === "public" || (route.access === "docs" && publicDocs);
  const responses: Record<string, unknown> = {
    "200": {
      description: "Success (for shard results: every selected shard succeeded)",
      content: { "application/json": { schema: route.response } },
    },
    "429": {
      ...errorResponse("Too many requests from this address; see Retry-After"),
      headers: {
        "Retry-After": { description: "Seconds to wait", schema: { type: "integer" } },
      },
    },
  };
  if (!open) responses["401"] = errorResponse("Missing or wrong bearer token");
  if (route.query.length > 0 || route.requestBody) {
    responses["400"] = errorResponse("Invalid parameters or body");
  }
  const properties = (route.response.properties ?? {}) as Record<string, unknown>;
  if ("results" in properties) {
    responses.default = {
      description:
        "Some shard failed: the failing shards' status (404 not found, 409 conflict or not the leader, 503 unreachable, …) or 502 when they differ; the body still lists every shard",
      content: { "application/json": { schema: route.response } },
    };
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(open ? { security: [] } : {}),
    ...(route.query.length > 0
      ? {
          parameters: route.query.map((q) => ({
            name: q.name,
            in: "query",
            required: q.required,
            description: q.description,
            schema: { type: q.type },
          })),
        }
      : {}),
    ...(route.requestBody
      ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: route.requestBody } },
          },
        }
      : {}),
    responses,
  };
}

/**
 * Builds the document for `routes`. With `publicDocs` the document itself is marked as needing no
 * token (serve `--api-docs`).
 */
export function buildOpenApiDocument(
  routes: readonly ApiRoute[],
  publicDocs = false,
): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    paths[r.path] ??= {};
    paths[r.path]![r.method.toLowerCase()] = operation(r, publicDocs);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "nstance admin API",
      version: VERSION,
      description:
        "The nstance-admin operations over HTTPS (`nstance-admin serve`). Every route but /health needs `Authorization: Bearer <token>` with a token from one of the server's token files. Shard results have the shape of the CLI's --json output. Each client address has a token-bucket budget; beyond it the answer is 429 with Retry-After.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    security: [{ [BEARER_SCHEME]: [] }],
    paths,
    components: {
      schemas: API_SCHEMAS,
      securitySchemes: {
        [BEARER_SCHEME]: {
          type: "http",
          scheme: "bearer",
          description: "A token from one of serve's --token-file files (read on every request)",
        },
      },
    },
  };
}
