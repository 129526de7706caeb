// SPDX-License-Identifier: Apache-2.0
/**
 * The admin HTTP API and dashboard listener: HTTPS with TLS 1.3 only, a per-client-address token
 * bucket in front of everything (429 with Retry-After), bearer tokens read from their files on
 * every request, JSON in and out, and strict security headers. Routes come from
 * {@link ADMIN_API_ROUTES}; `/`, `/app.js` and `/style.css` are the dashboard.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpServer, splitHostPort } from "../../http/http-server.js";
import { TLS_VERSION } from "../../pki/tls-options.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { type RateLimit, RateLimiter } from "../../shared/rate-limiter.js";
import {
  ADMIN_API_ROUTES,
  type AdminApiBackend,
  type ApiRoute,
  HTTP_STATUS_BY_ERROR_CODE,
} from "./admin-api.js";
import type { DashboardAsset } from "./dashboard-assets.js";
import { buildOpenApiDocument } from "./openapi-document.js";
import type { TokenFileAuth } from "./token-file-auth.js";

/** Where serve listens by default: loopback only; `--bind :8080` exposes it. */
export const DEFAULT_ADMIN_BIND = "127.0.0.1:8080";
/** Per-address budget of the token-authenticated API (seed 004: burst 120, 20 req/s per IP). */
export const DEFAULT_ADMIN_RATE_LIMIT: RateLimit = { burst: 120, perSecond: 20 };
/** Largest request body accepted. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/**
 * Sent with every response. No HSTS: the default certificate is for `localhost`, and HSTS there
 * would force HTTPS on every other local port too.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/** Options for {@link AdminHttpServer}. */
export interface AdminHttpServerOptions {
  /** `host:port`; port 0 picks a free port. Defaults to {@link DEFAULT_ADMIN_BIND}. */
  bind?: string;
  /** Server certificate and key (PEM). */
  tls: { certPem: string; keyPem: string };
  auth: TokenFileAuth;
  backend: AdminApiBackend;
  /** Defaults to {@link DEFAULT_ADMIN_RATE_LIMIT}. */
  rateLimit?: RateLimit;
  /** Serve /openapi.json without a token (`--api-docs`). */
  publicDocs?: boolean;
  /** The dashboard's files by URL path; without them only the API is served. */
  dashboard?: ReadonlyMap<string, DashboardAsset>;
  logger: Logger;
}

type State = "new" | "running" | "stopped";

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

/** Reads at most `limit` bytes of body; undefined when over the limit. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The admin HTTPS listener; see the file comment. */
export class AdminHttpServer {
  readonly #opts: AdminHttpServerOptions;
  readonly #limiter: RateLimiter;
  readonly #routes = new Map<string, ApiRoute[]>();
  readonly #openApi: string;
  readonly #http: HttpServer;
  #state: State = "new";

  constructor(opts: AdminHttpServerOptions) {
    this.#opts = opts;
    this.#limiter = new RateLimiter({ limit: opts.rateLimit ?? DEFAULT_ADMIN_RATE_LIMIT });
    for (const r of ADMIN_API_ROUTES) {
      this.#routes.set(r.path, [...(this.#routes.get(r.path) ?? []), r]);
    }
    this.#openApi = JSON.stringify(buildOpenApiDocument(ADMIN_API_ROUTES, opts.publicDocs));
    this.#http = new HttpServer({
      name: "admin",
      routes: {},
      fallback: (req, res) => this.#handle(req, res),
      tls: {
        cert: opts.tls.certPem,
        key: opts.tls.keyPem,
        minVersion: TLS_VERSION,
        maxVersion: TLS_VERSION,
      },
      logger: opts.logger,
    });
  }

  /** The bound `host:port` ("" before start). */
  get address(): string {
    return this.#http.address;
  }

  /** The dashboard's URL, with `localhost` for a loopback or wildcard bind. */
  get url(): string {
    const { host, port } = splitHostPort(this.address);
    const local = ["127.0.0.1", "::1", "0.0.0.0", "::"].includes(host);
    const shown = local ? "localhost" : host.includes(":") ? `[${host}]` : host;
    return `https://${shown}:${port}/`;
  }

  /** Starts listening; resolves once bound. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new NstanceError("precondition_failed", "already started");
    this.#state = "running";
    const bind = this.#opts.bind ?? DEFAULT_ADMIN_BIND;
    try {
      await this.#http.listen(bind);
    } catch (err) {
      throw new NstanceError("unavailable", `cannot listen on ${bind}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  /** Stops listening. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    await this.#http.stop();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const startedAt = performance.now();
    const client = req.socket.remoteAddress ?? "unknown";
    const url = new URL(req.url ?? "/", "https://admin.invalid");
    const method = req.method ?? "GET";
    const log = this.#opts.logger;

    const limit = this.#limiter.take(client);
    if (!limit.allowed) {
      if (limit.firstRefusal) {
        log.warn("Requests from one address exceed its budget; answering 429", {
          client_addr: client,
          burst: this.#limiter.limit.burst,
          per_second: this.#limiter.limit.perSecond,
        });
      }
      const seconds = Math.max(1, Math.ceil(limit.retryAfterMs / 1000));
      sendError(res, 429, "resource_exhausted", `too many requests; retry in ${seconds} s`, {
        "retry-after": String(seconds),
      });
      return;
    }

    const asset = this.#opts.dashboard?.get(url.pathname);
    if (asset && (method === "GET" || method === "HEAD")) {
      this.#sendAsset(req, res, asset, method === "HEAD");
      return;
    }
    const candidates = this.#routes.get(url.pathname);
    if (!candidates) {
      sendError(res, 404, "not_found", `no route ${url.pathname}`);
      return;
    }
    const route = candidates.find((r) => r.method === method);
    if (!route) {
      sendError(res, 405, "invalid_argument", `${method} is not allowed on ${url.pathname}`, {
        allow: candidates.map((r) => r.method).join(", "),
      });
      return;
    }

    let tokenName: string | undefined;
    if (route.access === "token" || (route.access === "docs" && !this.#opts.publicDocs)) {
      const auth = await this.#opts.auth.authenticate(req.headers.authorization);
      if (!auth.ok) {
        const attrs = { client_addr: client, path: url.pathname, reason: auth.reason };
        if (auth.reason === "missing") log.debug("Request without a bearer token", attrs);
        else log.warn("Request with a wrong bearer token refused", attrs);
        sendError(
          res,
          401,
          "unauthenticated",
          auth.reason === "missing"
            ? "a bearer token is required (Authorization: Bearer <token>)"
            : "the bearer token is not valid",
          {
            "www-authenticate":
              auth.reason === "missing"
                ? 'Bearer realm="nstance-admin"'
                : 'Bearer realm="nstance-admin", error="invalid_token"',
          },
        );
        return;
      }
      tokenName = auth.name;
    }

    if (route.path === "/openapi.json") {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": "application/json; charset=utf-8",
        "cache-control": "no-cache",
      });
      res.end(this.#openApi);
      return;
    }

    let body: unknown;
    if (method === "POST") {
      const raw = await readBody(req, DEFAULT_MAX_BODY_BYTES);
      if (raw === undefined) {
        sendError(res, 413, "invalid_argument", `the body exceeds ${DEFAULT_MAX_BODY_BYTES} bytes`);
        return;
      }
      if (raw.length > 0) {
        if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
          sendError(res, 415, "invalid_argument", "the body must be application/json");
          return;
        }
        try {
          body = JSON.parse(raw.toString("utf8"));
        } catch (err) {
          sendError(res, 400, "invalid_argument", `the body is not JSON: ${errorMessage(err)}`);
          return;
        }
      }
    }

    // Calls still running when the client goes away are cancelled.
    const ctl = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) ctl.abort();
    });
    let status: number;
    try {
      const out = await route.handle(this.#opts.backend, {
        query: url.searchParams,
        body,
        signal: ctl.signal,
      });
      status = out.status;
      sendJson(res, out.status, out.body);
    } catch (err) {
      if (err instanceof NstanceError && err.code !== "internal") {
        status = HTTP_STATUS_BY_ERROR_CODE[err.code];
        sendError(res, status, err.code, err.message);
      } else {
        status = 500;
        log.error("Admin API route failed", { path: url.pathname, err });
        sendError(res, 500, "internal", "internal error");
      }
    }
    log.debug("Admin API request", {
      method,
      path: url.pathname,
      status,
      client_addr: client,
      ...(tokenName ? { token_name: tokenName } : {}),
      duration_ms: Math.round(performance.now() - startedAt),
    });
  }

  #sendAsset(req: IncomingMessage, res: ServerResponse, asset: DashboardAsset, head: boolean) {
    const headers = {
      ...SECURITY_HEADERS,
      "content-type": asset.contentType,
      "cache-control": "no-cache",
      etag: asset.etag,
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "content-length": String(asset.body.length) });
    res.end(head ? undefined : asset.body);
  }
}
