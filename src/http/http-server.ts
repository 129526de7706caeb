// SPDX-License-Identifier: Apache-2.0
/** A small HTTP server with exact-path routes, a fallback, and graceful close. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { SecureServerOptions } from "node:http2";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "../shared/logger.js";

/** A route handler; may be async. Errors become a 500. */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** Options for {@link HttpServer}. */
export interface HttpServerOptions {
  /** Name used in logs (`health`, `admin`). */
  name: string;
  /** Exact path → handler (query strings are ignored when matching). */
  routes: Record<string, RouteHandler>;
  /** Handler for any other path; defaults to 404. */
  fallback?: RouteHandler;
  /** Serve HTTPS with these options (TLS 1.3 settings come from src/pki/tls-options.ts). */
  tls?: SecureServerOptions;
  logger: Logger;
}

/** Splits `host:port` (IPv6 in brackets) into its parts. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  if (i < 0) throw new Error(`invalid address "${addr}": want host:port`);
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid port in "${addr}"`);
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** Writes a JSON response. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(text);
}

/** An HTTP listener that can move to another address without dropping its routes. */
export class HttpServer {
  readonly #opts: HttpServerOptions;
  #server: Server | undefined;
  #address = "";

  constructor(opts: HttpServerOptions) {
    this.#opts = opts;
  }

  /** The bound `host:port` (with the real port when 0 was asked), or "" before listen. */
  get address(): string {
    return this.#address;
  }

  /** Starts listening on `addr` (host:port); resolves once bound. */
  async listen(addr: string): Promise<void> {
    const { host, port } = splitHostPort(addr);
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    const server: Server = this.#opts.tls
      ? createHttpsServer(this.#opts.tls, handler)
      : createServer(handler);
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const a = server.address() as AddressInfo;
    this.#server = server;
    this.#address = `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
    this.#opts.logger.info("HTTP listener started", {
      listener: this.#opts.name,
      addr: this.#address,
    });
  }

  /** Moves the listener: binds the new address first, then closes the old one. */
  async rebind(addr: string): Promise<void> {
    const old = this.#server;
    this.#server = undefined;
    await this.listen(addr);
    if (old) await closeServer(old);
  }

  /** Stops listening and closes idle connections. Idempotent. */
  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s) await closeServer(s);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const handler = this.#opts.routes[path] ?? this.#opts.fallback;
    if (!handler) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("Not Found\n");
      return;
    }
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((err: unknown) => {
        this.#opts.logger.error("HTTP handler failed", { listener: this.#opts.name, path, err });
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("Internal Server Error\n");
      });
  }
}

function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeIdleConnections();
  });
}
