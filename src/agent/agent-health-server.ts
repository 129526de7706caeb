// SPDX-License-Identifier: Apache-2.0
/**
 * The agent's optional liveness endpoint: plain HTTP `GET`/`HEAD /healthz` → 200 `ok` on
 * `NSTANCE_HEALTH_ADDR`. It answers while the process runs; it says nothing about the server.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { IllegalStateError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

/** Options for {@link AgentHealthServer}. */
export interface AgentHealthServerOptions {
  /** `host:port` (IPv6 in brackets; empty host = all interfaces; port 0 = any). */
  addr: string;
  logger: Logger;
}

/** Splits `host:port` (IPv6 in brackets, empty host = all interfaces) for `listen`. */
export function parseListenAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  if (i < 0) throw new TypeError(`invalid address "${addr}": want host:port`);
  let host = addr.slice(0, i);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`invalid port in "${addr}"`);
  }
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** Lifecycle of an {@link AgentHealthServer}. */
export type AgentHealthServerState = "idle" | "listening" | "stopped";

/** Serves `/healthz`; see the file comment. */
export class AgentHealthServer {
  readonly #addr: string;
  readonly #logger: Logger;
  #server: Server | undefined;
  #state: AgentHealthServerState = "idle";
  #address = "";

  constructor(opts: AgentHealthServerOptions) {
    if (!opts.addr) throw new TypeError("addr is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#addr = opts.addr;
    this.#logger = opts.logger;
  }

  /** Current lifecycle state. */
  get state(): AgentHealthServerState {
    return this.#state;
  }

  /** The bound `host:port` (the real port when 0 was asked); empty before start. */
  get address(): string {
    return this.#address;
  }

  /** Listens; rejects when the address cannot be bound. */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new IllegalStateError(`health server is ${this.#state}`);
    const { host, port } = parseListenAddr(this.#addr);
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path !== "/healthz") {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end();
        return;
      }
      res.writeHead(200, { "content-type": "text/plain", "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : "ok");
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    this.#state = "listening";
    const a = server.address() as AddressInfo;
    this.#address = a.family === "IPv6" ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
    this.#logger.info("Health endpoint listening", { addr: this.#address });
  }

  /** Stops listening and closes idle connections; idempotent. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#state = "stopped";
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
