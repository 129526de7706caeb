// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: storage faults on command. {@link StorageFaults} decides, per request, whether to
 * delay it, answer 503, drop the connection before or after the store applied it, or answer a
 * conditional PUT with 409 ConditionalRequestConflict (S3's answer to racing conditional writes).
 * Tests flip it at runtime with `faults.set({ latencyMs, errorRate, drop, conflict })`.
 *
 * Two places apply it: the S3 test server itself (`s3.faults`, every client sees the faults) and
 * {@link startStorageFaultProxy}, an HTTP proxy in front of it for one client (one server of an HA
 * set). Both speak S3's error format. Randomness is injectable so a seeded run replays exactly.
 */
import {
  type Agent,
  createServer,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { sleep } from "../../src/shared/sleep.js";

/** What the fault decision looks at in a request. */
export interface StorageRequest {
  method: string;
  /** Object key (decoded, without the bucket); `""` for bucket-level requests such as a list. */
  key: string;
  /** True for a PUT with `If-Match` or `If-None-Match`. */
  conditional: boolean;
}

/**
 * Fault settings. Rates are fractions 0..1 drawn per request; `…Next` counters fault exactly that
 * many upcoming requests (they win over rates). Unset fields mean no fault of that kind.
 */
export interface StorageFaultSettings {
  /** Delay before each request is handled, in ms. */
  latencyMs?: number;
  /** Extra random delay up to this many ms per request. */
  jitterMs?: number;
  /** Fraction of requests answered 503 ServiceUnavailable without reaching the store. */
  errorRate?: number;
  /** Fraction of requests whose connection is dropped before they reach the store. */
  drop?: number;
  /**
   * Fraction of requests that reach the store (a write is applied) but whose connection is
   * dropped before the answer: the client cannot know whether its write happened.
   */
  dropResponse?: number;
  /** Fraction of conditional PUTs answered 409 ConditionalRequestConflict, not applied. */
  conflict?: number;
  /** Answer this many upcoming requests with 503. */
  failNext5xx?: number;
  /** Drop the connection of this many upcoming requests (before the store). */
  resetNext?: number;
  /** Answer this many upcoming conditional PUTs with 409. */
  conflictNext?: number;
  /** Apply this many upcoming requests but drop their connection before the answer. */
  dropResponseNext?: number;
  /** Only requests for which this holds are faulted (all when unset). */
  match?: (req: StorageRequest) => boolean;
}

/** What to do with one request. */
export type FaultAction = "forward" | "error" | "drop" | "drop-response" | "conflict";

/** The decision for one request: wait `delayMs`, then act. */
export interface FaultDecision {
  delayMs: number;
  action: FaultAction;
}

/** Requests seen and faults injected so far, by kind. */
export interface StorageFaultStats {
  requests: number;
  delayed: number;
  errors: number;
  drops: number;
  droppedResponses: number;
  conflicts: number;
}

/** Options for {@link StorageFaults}. */
export interface StorageFaultsOptions {
  /** Initial settings; none by default. */
  settings?: StorageFaultSettings;
  /** Random source in [0, 1); defaults to `Math.random` (pass a seeded one to replay a run). */
  random?: () => number;
}

/** The fault switchboard shared by the S3 test server and the fault proxy; see the file comment. */
export class StorageFaults {
  readonly #random: () => number;
  #settings: StorageFaultSettings;
  readonly #stats: StorageFaultStats = {
    requests: 0,
    delayed: 0,
    errors: 0,
    drops: 0,
    droppedResponses: 0,
    conflicts: 0,
  };

  constructor(opts: StorageFaultsOptions = {}) {
    this.#random = opts.random ?? Math.random;
    this.#settings = { ...opts.settings };
    validateSettings(this.#settings);
  }

  /** Changes the given fields (others keep their values); applies to requests from now on. */
  set(settings: StorageFaultSettings): void {
    const next = { ...this.#settings, ...settings };
    validateSettings(next);
    this.#settings = next;
  }

  /** Removes every fault (healthy storage). */
  clear(): void {
    this.#settings = {};
  }

  /** A copy of the current settings. */
  get settings(): Readonly<StorageFaultSettings> {
    return { ...this.#settings };
  }

  /** A copy of the counters. */
  get stats(): Readonly<StorageFaultStats> {
    return { ...this.#stats };
  }

  /** Decides the fate of one request and counts it. */
  decide(req: StorageRequest): FaultDecision {
    this.#stats.requests++;
    const s = this.#settings;
    if (s.match && !s.match(req)) return { delayMs: 0, action: "forward" };
    const delayMs = (s.latencyMs ?? 0) + (s.jitterMs ? Math.floor(this.#random() * s.jitterMs) : 0);
    if (delayMs > 0) this.#stats.delayed++;
    const action = this.#action(req, s);
    if (action === "error") this.#stats.errors++;
    else if (action === "drop") this.#stats.drops++;
    else if (action === "drop-response") this.#stats.droppedResponses++;
    else if (action === "conflict") this.#stats.conflicts++;
    return { delayMs, action };
  }

  #action(req: StorageRequest, s: StorageFaultSettings): FaultAction {
    if (s.resetNext) {
      this.#settings = { ...this.#settings, resetNext: s.resetNext - 1 };
      return "drop";
    }
    if (s.failNext5xx) {
      this.#settings = { ...this.#settings, failNext5xx: s.failNext5xx - 1 };
      return "error";
    }
    if (req.conditional && s.conflictNext) {
      this.#settings = { ...this.#settings, conflictNext: s.conflictNext - 1 };
      return "conflict";
    }
    if (s.dropResponseNext) {
      this.#settings = { ...this.#settings, dropResponseNext: s.dropResponseNext - 1 };
      return "drop-response";
    }
    // One draw per kind, so changing one rate does not shift the outcomes of the others.
    const roll = (rate: number | undefined): boolean => rate !== undefined && this.#random() < rate;
    if (roll(s.drop)) return "drop";
    if (roll(s.errorRate)) return "error";
    if (req.conditional && roll(s.conflict)) return "conflict";
    if (roll(s.dropResponse)) return "drop-response";
    return "forward";
  }
}

function validateSettings(s: StorageFaultSettings): void {
  for (const k of ["errorRate", "drop", "dropResponse", "conflict"] as const) {
    const v = s[k];
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${k} must be in 0..1`);
  }
  for (const k of [
    "latencyMs",
    "jitterMs",
    "failNext5xx",
    "resetNext",
    "conflictNext",
    "dropResponseNext",
  ] as const) {
    const v = s[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
      throw new RangeError(`${k} must be a non-negative integer`);
    }
  }
}

/**
 * The request as the fault decision sees it, from a path-style S3 URL (`/bucket/key?query`) and
 * its headers.
 */
export function storageRequestOf(
  method: string,
  url: string,
  header: (name: string) => string | undefined,
): StorageRequest {
  const path = url.split("?")[0] ?? "";
  const m = /^\/[^/]+\/(.+)$/.exec(path);
  let key = "";
  if (m) {
    try {
      key = m[1]!.split("/").map(decodeURIComponent).join("/");
    } catch {
      key = m[1]!;
    }
  }
  const conditional = method === "PUT" && Boolean(header("if-match") || header("if-none-match"));
  return { method, key, conditional };
}

/** The XML error body S3 sends, so SDK clients parse the injected answer like a real one. */
export function s3ErrorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>injected-fault</RequestId></Error>`;
}

/** Status, S3 error code and message of the injected answers. */
export const INJECTED_ANSWERS = {
  error: {
    status: 503,
    code: "ServiceUnavailable",
    message: "Injected fault: please reduce your request rate.",
  },
  conflict: {
    status: 409,
    code: "ConditionalRequestConflict",
    message: "Injected fault: a conflicting conditional operation is in progress.",
  },
} as const;

/** A running fault proxy. */
export interface StorageFaultProxy {
  /** `http://127.0.0.1:port`: give it to the client as its S3 endpoint (`AWS_ENDPOINT_URL`). */
  endpoint: string;
  /** The switchboard of this proxy; its faults apply only to clients of this proxy. */
  faults: StorageFaults;
  /** Destroys every open client connection (both sides see a reset). */
  cutAll(): void;
  /** Closes the proxy and every connection. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startStorageFaultProxy}. */
export interface StorageFaultProxyOptions {
  /** The S3 server to forward to, `http://host:port` (e.g. `S3TestServer.endpoint`). */
  target: string;
  /** The switchboard to use; a new one (no faults) by default. */
  faults?: StorageFaults;
}

/**
 * Starts an HTTP proxy on 127.0.0.1, port 0, in front of an S3 endpoint, applying `faults` to the
 * requests that pass through it. Requests are forwarded unchanged (the `Host` header included, so
 * SigV4 signatures stay valid).
 */
export async function startStorageFaultProxy(
  opts: StorageFaultProxyOptions,
): Promise<StorageFaultProxy> {
  const target = new URL(opts.target);
  const faults = opts.faults ?? new StorageFaults();
  const upstreamAgent: Agent = new HttpAgent({ keepAlive: true });
  const sockets = new Set<Socket>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const decision = faults.decide(
      storageRequestOf(req.method ?? "GET", req.url ?? "/", (h) => req.headers[h] as string),
    );
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    switch (decision.action) {
      case "drop":
        req.socket.destroy();
        return;
      case "error":
      case "conflict": {
        // Read the request body first, so the connection stays usable for the next request.
        for await (const _ of req) {
          // discard
        }
        const a = INJECTED_ANSWERS[decision.action];
        const body = req.method === "HEAD" ? "" : s3ErrorXml(a.code, a.message);
        res.writeHead(a.status, {
          "content-type": "application/xml",
          "content-length": Buffer.byteLength(body),
          "x-amz-error-code": a.code,
        });
        res.end(body);
        return;
      }
      case "forward":
      case "drop-response":
        break;
    }
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent: upstreamAgent,
      },
      (upRes) => {
        if (decision.action === "drop-response") {
          // The store has applied the request; the client never learns it.
          upRes.resume();
          upRes.once("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.once("error", () => res.destroy());
      },
    );
    upstream.once("error", () => req.socket.destroy());
    req.pipe(upstream);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => req.socket.destroy());
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    faults,
    cutAll() {
      for (const s of sockets) s.destroy();
    },
    stop() {
      stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        upstreamAgent.destroy();
        await closed;
      })();
      return stopped;
    },
  };
}
