// SPDX-License-Identifier: Apache-2.0
/**
 * The seed's health endpoint: `/health` and `/` answer 503 until configuration is loaded, then 200.
 * The body is a JSON snapshot (status, server, leadership) for people and scripts; load balancers only
 * need the status code.
 */
import type { RouteHandler } from "./http-server.js";
import { sendJson } from "./http-server.js";

/** What the health endpoint reports; `ready` decides 200 vs 503. */
export interface HealthSnapshot {
  ready: boolean;
  /** Why the server is not ready (`loading configuration`, `configuration failed to load`). */
  reason?: string;
  [key: string]: unknown;
}

/** Builds the `/health` handler from a snapshot function. */
export function healthHandler(snapshot: () => HealthSnapshot): RouteHandler {
  return (req, res) => {
    const s = snapshot();
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    sendJson(res, s.ready ? 200 : 503, { status: s.ready ? "ok" : "unavailable", ...s });
  };
}
