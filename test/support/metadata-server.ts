// SPDX-License-Identifier: Apache-2.0
/**
 * A stand-in for the AWS (IMDS, v1 and v2) and Google Compute metadata services, serving just
 * what the agent's spot handling asks for. Tests point `NSTANCE_METADATA_URL` at it and switch a
 * termination notice on when they want one.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Options for {@link MetadataServer}. */
export interface MetadataServerOptions {
  /** Which cloud to impersonate; the other cloud's paths answer 404. */
  cloud: "aws" | "google";
  /** Whether the VM is spot/preemptible. Defaults to true. */
  spot?: boolean;
  /** AWS only: refuse requests without an IMDSv2 token (401), as `HttpTokens=required` does. */
  requireToken?: boolean;
  /** AWS only: answer 404 to the token PUT, like an IMDSv1-only service. */
  tokenUnsupported?: boolean;
}

/** A notice to serve; `time` is AWS's RFC 3339 time (Google has none). */
export interface ServedNotice {
  action: string;
  time?: string;
}

/** One request the server saw. */
export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
}

/** Status and body of an answer. */
type Reply = [status: number, body?: string];

/** HTTP server impersonating a cloud metadata service on 127.0.0.1, port 0. */
export class MetadataServer {
  readonly #opts: MetadataServerOptions;
  readonly #tokens = new Set<string>();
  #server: Server | undefined;
  #url = "";
  #spot: boolean;
  #notice: ServedNotice | undefined;
  #failStatus: number | undefined;
  readonly requests: SeenRequest[] = [];

  constructor(opts: MetadataServerOptions) {
    this.#opts = opts;
    this.#spot = opts.spot ?? true;
  }

  /** Base URL, e.g. `http://127.0.0.1:41234`; empty before {@link start}. */
  get url(): string {
    return this.#url;
  }

  /** Starts listening. */
  async start(): Promise<void> {
    const server = createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.#url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Stops listening and drops open connections; idempotent. */
  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Switches the termination notice on (or off with undefined). */
  setNotice(notice: ServedNotice | undefined): void {
    this.#notice = notice;
  }

  /** Changes whether the VM reports itself as spot. */
  setSpot(spot: boolean): void {
    this.#spot = spot;
  }

  /** Makes every request fail with `status` (e.g. 500), or behave again with undefined. */
  setFailure(status: number | undefined): void {
    this.#failStatus = status;
  }

  /** Requests seen for `path` (any method). */
  countRequests(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    this.requests.push({ method: req.method ?? "", path, headers: req.headers });
    let reply: Reply;
    if (this.#failStatus !== undefined) reply = [this.#failStatus, "injected failure"];
    else if (this.#opts.cloud === "aws") reply = this.#aws(req, path);
    else {
      reply = this.#google(req, path);
      if (reply[0] !== 403) res.setHeader("Metadata-Flavor", "Google");
    }
    res.writeHead(reply[0], { "content-type": "text/plain" });
    res.end(reply[1] ?? "");
  }

  #aws(req: IncomingMessage, path: string): Reply {
    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return [405];
      if (this.#opts.tokenUnsupported) return [404];
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return [400, "bad ttl"];
      const token = randomBytes(16).toString("base64url");
      this.#tokens.add(token);
      return [200, token];
    }
    if (!path.startsWith("/latest/meta-data/")) return [404];
    if (req.method !== "GET") return [405];
    const token = req.headers["x-aws-ec2-metadata-token"];
    if (token !== undefined && !this.#tokens.has(String(token))) return [401];
    if (token === undefined && this.#opts.requireToken) return [401];
    switch (path) {
      case "/latest/meta-data/instance-life-cycle":
        return [200, this.#spot ? "spot" : "on-demand"];
      case "/latest/meta-data/spot/instance-action":
        if (!this.#notice) return [404];
        return [
          200,
          JSON.stringify({
            action: this.#notice.action,
            time: this.#notice.time ?? new Date().toISOString(),
          }),
        ];
      default:
        return [404];
    }
  }

  #google(req: IncomingMessage, path: string): Reply {
    if (!path.startsWith("/computeMetadata/v1/")) return [404];
    // The real server refuses requests without this header, to stop SSRF through proxies.
    if (req.headers["metadata-flavor"] !== "Google") {
      return [403, "Missing Metadata-Flavor:Google header."];
    }
    switch (path) {
      case "/computeMetadata/v1/instance/scheduling/preemptible":
        return [200, this.#spot ? "TRUE" : "FALSE"];
      case "/computeMetadata/v1/instance/scheduling/provisioning-model":
        return [200, "STANDARD"];
      case "/computeMetadata/v1/instance/preempted":
        return [200, this.#notice ? "TRUE" : "FALSE"];
      default:
        return [404];
    }
  }
}
