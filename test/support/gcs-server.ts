// SPDX-License-Identifier: Apache-2.0
/**
 * A minimal Google Cloud Storage JSON-API server for tests, enough for the real
 * `@google-cloud/storage` client with simple (non-resumable) uploads: multipart and media uploads,
 * media download (`alt=media` and `/download/…`), object metadata, list with prefix, delimiter and
 * page tokens, delete, and `ifGenerationMatch` / `ifGenerationNotMatch` preconditions. Objects live
 * in memory. Responses carry correct `md5Hash` and `crc32c` (the client validates downloads), and
 * every mutation of a key is atomic because the server handles each request without interleaving
 * the check and the write.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { sleep } from "../../src/shared/sleep.js";

/** Bucket the server creates when none is named. */
export const DEFAULT_GCS_TEST_BUCKET = "nstance-test";
/** Page size of object listings when the client asks for none (the real service uses 1000). */
const DEFAULT_MAX_RESULTS = 1000;

/** Faults injected into the next requests; tests set fields on {@link GcsTestServer.faults}. */
export interface GcsServerFaults {
  /** Delay before answering each request, in ms. */
  latencyMs?: number;
  /** Answer this many upcoming requests with 503, then serve normally. */
  failNext5xx?: number;
}

/** A running test server. */
export interface GcsTestServer {
  /** Base URL (`http://127.0.0.1:port`), for GcsStorage's `apiEndpoint`. */
  endpoint: string;
  bucket: string;
  /** `STORAGE_EMULATOR_HOST` pointing at this server, for createStorage's env argument. */
  env: Record<string, string>;
  /** Mutable fault injection; see {@link GcsServerFaults}. */
  faults: GcsServerFaults;
  /** Requests served so far, by `METHOD path-kind` (e.g. `POST upload`); for tests. */
  readonly requests: Map<string, number>;
  stop(): Promise<void>;
}

/** Options for {@link startGcsServer}. */
export interface GcsServerOptions {
  /** Buckets to create. Defaults to [{@link DEFAULT_GCS_TEST_BUCKET}]. */
  buckets?: string[];
}

interface StoredGcsObject {
  data: Buffer;
  generation: bigint;
  metageneration: number;
  contentType: string;
  created: Date;
  updated: Date;
  md5Hash: string;
  crc32c: string;
}

class HttpError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `data`, as an unsigned 32-bit number. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The base64 big-endian encoding of CRC-32C that GCS uses in `crc32c` and `x-goog-hash`. */
export function crc32cBase64(data: Uint8Array): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc32c(data));
  return b.toString("base64");
}

/** Starts the server on 127.0.0.1, port 0. */
export async function startGcsServer(opts: GcsServerOptions = {}): Promise<GcsTestServer> {
  const bucketNames = opts.buckets ?? [DEFAULT_GCS_TEST_BUCKET];
  const buckets = new Map<string, Map<string, StoredGcsObject>>(
    bucketNames.map((b) => [b, new Map()]),
  );
  // Generations only grow, like the real service's microsecond timestamps.
  let lastGeneration = BigInt(Date.now()) * 1000n;
  const faults: GcsServerFaults = {};
  const requests = new Map<string, number>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = parseRoute(url.pathname);
    const kindKey = `${req.method} ${route?.kind ?? "unknown"}`;
    requests.set(kindKey, (requests.get(kindKey) ?? 0) + 1);
    if (faults.latencyMs) await sleep(faults.latencyMs);
    if (faults.failNext5xx && faults.failNext5xx > 0) {
      faults.failNext5xx--;
      await drain(req);
      throw new HttpError(503, "backendError", "injected fault");
    }
    if (!route) throw new HttpError(404, "notFound", `no route for ${url.pathname}`);
    const objects = buckets.get(route.bucket);
    if (!objects) throw new HttpError(404, "notFound", `bucket ${route.bucket} not found`);
    const q = url.searchParams;

    if (route.kind === "upload" && req.method === "POST") {
      const body = await readBody(req);
      const uploadType = q.get("uploadType") ?? "media";
      let name = q.get("name") ?? undefined;
      let contentType = req.headers["content-type"] ?? "application/octet-stream";
      let data = body;
      if (uploadType === "multipart") {
        const parts = parseMultipartRelated(body, contentType);
        const meta = JSON.parse(parts[0]!.body.toString("utf8")) as {
          name?: string;
          contentType?: string;
        };
        name = meta.name ?? name;
        contentType = meta.contentType ?? parts[1]!.contentType ?? "application/octet-stream";
        data = parts[1]!.body;
      } else if (uploadType !== "media") {
        throw new HttpError(501, "notImplemented", `uploadType=${uploadType} is not supported`);
      }
      if (!name) throw new HttpError(400, "required", "object name is required");
      checkPreconditions(objects.get(name), q);
      const previous = objects.get(name);
      lastGeneration += 1n;
      const now = new Date();
      const obj: StoredGcsObject = {
        data,
        generation: lastGeneration,
        metageneration: 1,
        contentType,
        created: previous?.created ?? now,
        updated: now,
        md5Hash: createHash("md5").update(data).digest("base64"),
        crc32c: crc32cBase64(data),
      };
      objects.set(name, obj);
      sendJson(res, 200, resource(route.bucket, name, obj));
      return;
    }

    if (route.kind === "list" && req.method === "GET") {
      const prefix = q.get("prefix") ?? "";
      const delimiter = q.get("delimiter") ?? "";
      const maxResults = Number(q.get("maxResults") ?? DEFAULT_MAX_RESULTS) || DEFAULT_MAX_RESULTS;
      const pageToken = q.get("pageToken");
      const after = pageToken ? Buffer.from(pageToken, "base64url").toString("utf8") : undefined;
      const names = [...objects.keys()]
        .filter((n) => n.startsWith(prefix))
        .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      const items: unknown[] = [];
      const prefixes: string[] = [];
      let nextPageToken: string | undefined;
      let last: string | undefined;
      for (const n of names) {
        if (after !== undefined && Buffer.compare(Buffer.from(n), Buffer.from(after)) <= 0) {
          continue;
        }
        const cut = delimiter ? n.indexOf(delimiter, prefix.length) : -1;
        const common = cut >= 0 ? n.slice(0, cut + delimiter.length) : undefined;
        if (common !== undefined && common === prefixes.at(-1)) continue;
        if (items.length + prefixes.length === maxResults) {
          nextPageToken = Buffer.from(last ?? "", "utf8").toString("base64url");
          break;
        }
        if (common !== undefined) {
          prefixes.push(common);
          // The next page starts after every name under this prefix.
          last = `${common}\u{10ffff}`;
        } else {
          items.push(resource(route.bucket, n, objects.get(n)!));
          last = n;
        }
      }
      sendJson(res, 200, {
        kind: "storage#objects",
        items,
        ...(prefixes.length > 0 ? { prefixes } : {}),
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      return;
    }

    if (route.kind === "object" || route.kind === "download") {
      const name = route.object!;
      const obj = objects.get(name);
      if (req.method === "DELETE" && route.kind === "object") {
        if (!obj) throw new HttpError(404, "notFound", `No such object: ${route.bucket}/${name}`);
        checkPreconditions(obj, q);
        objects.delete(name);
        res.writeHead(204).end();
        return;
      }
      if (req.method === "GET") {
        const wanted = q.get("generation");
        if (!obj || (wanted !== null && BigInt(wanted) !== obj.generation)) {
          throw new HttpError(404, "notFound", `No such object: ${route.bucket}/${name}`);
        }
        checkPreconditions(obj, q);
        if (route.kind === "download" || q.get("alt") === "media") {
          res.writeHead(200, {
            "content-type": obj.contentType,
            "content-length": String(obj.data.length),
            "x-goog-hash": `crc32c=${obj.crc32c},md5=${obj.md5Hash}`,
            "x-goog-generation": String(obj.generation),
            "x-goog-metageneration": String(obj.metageneration),
            "x-goog-stored-content-encoding": "identity",
            "x-goog-stored-content-length": String(obj.data.length),
            etag: `"${obj.md5Hash}"`,
            "last-modified": obj.updated.toUTCString(),
          });
          res.end(obj.data);
          return;
        }
        sendJson(res, 200, resource(route.bucket, name, obj));
        return;
      }
    }
    await drain(req);
    throw new HttpError(501, "notImplemented", `${req.method} ${url.pathname} is not supported`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e =
        err instanceof HttpError
          ? err
          : new HttpError(500, "backendError", err instanceof Error ? err.message : String(err));
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, e.status, {
        error: {
          code: e.status,
          message: e.message,
          errors: [{ domain: "global", reason: e.reason, message: e.message }],
        },
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    bucket: bucketNames[0]!,
    env: { STORAGE_EMULATOR_HOST: endpoint },
    faults,
    requests,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}

interface Route {
  kind: "upload" | "list" | "object" | "download";
  bucket: string;
  object?: string;
}

/**
 * Maps a path to a route. The client sends metadata calls to `{apiEndpoint}/storage/v1/b/…`, or
 * to `{STORAGE_EMULATOR_HOST}/b/…` when that variable is set, so both forms are accepted.
 */
function parseRoute(pathname: string): Route | undefined {
  const m =
    /^\/(upload\/storage\/v1|download\/storage\/v1|storage\/v1)?\/?b\/([^/]+)\/o(?:\/(.+))?$/.exec(
      pathname,
    );
  if (!m) return undefined;
  const bucket = decodeURIComponent(m[2]!);
  const object = m[3] === undefined ? undefined : decodeURIComponent(m[3]);
  if (m[1] === "upload/storage/v1")
    return object === undefined ? { kind: "upload", bucket } : undefined;
  if (m[1] === "download/storage/v1") {
    return object === undefined ? undefined : { kind: "download", bucket, object };
  }
  return object === undefined ? { kind: "list", bucket } : { kind: "object", bucket, object };
}

function checkPreconditions(current: StoredGcsObject | undefined, q: URLSearchParams): void {
  const match = q.get("ifGenerationMatch");
  if (match !== null) {
    const want = BigInt(match);
    const ok = want === 0n ? current === undefined : current?.generation === want;
    if (!ok) {
      throw new HttpError(
        412,
        "conditionNotMet",
        "At least one of the pre-conditions you specified did not hold.",
      );
    }
  }
  const notMatch = q.get("ifGenerationNotMatch");
  if (notMatch !== null && current !== undefined && current.generation === BigInt(notMatch)) {
    throw new HttpError(
      412,
      "conditionNotMet",
      "At least one of the pre-conditions you specified did not hold.",
    );
  }
}

function resource(bucket: string, name: string, o: StoredGcsObject): Record<string, unknown> {
  return {
    kind: "storage#object",
    id: `${bucket}/${name}/${o.generation}`,
    selfLink: `/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}`,
    name,
    bucket,
    generation: String(o.generation),
    metageneration: String(o.metageneration),
    contentType: o.contentType,
    storageClass: "STANDARD",
    size: String(o.data.length),
    md5Hash: o.md5Hash,
    crc32c: o.crc32c,
    etag: `${o.md5Hash}/${o.generation}`,
    timeCreated: o.created.toISOString(),
    updated: o.updated.toISOString(),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=UTF-8",
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _ of req) {
    // Discard the body so the connection can be reused.
  }
}

/** Splits a `multipart/related` body into its parts (headers are parsed for Content-Type only). */
export function parseMultipartRelated(
  body: Buffer,
  contentType: string,
): Array<{ contentType: string | undefined; body: Buffer }> {
  const m = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!m) throw new HttpError(400, "invalid", "multipart upload without a boundary");
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: Array<{ contentType: string | undefined; body: Buffer }> = [];
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    let start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === "--") break;
    if (body.subarray(start, start + 2).toString() === "\r\n") start += 2;
    const headerEnd = body.indexOf("\r\n\r\n", start);
    if (headerEnd < 0) break;
    const headers = body.subarray(start, headerEnd).toString("utf8");
    const next = body.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), headerEnd + 4);
    if (next < 0) break;
    const ct = /^content-type:\s*(.+)$/im.exec(headers)?.[1]?.trim();
    parts.push({ contentType: ct, body: body.subarray(headerEnd + 4, next) });
    pos = next + 2;
  }
  if (parts.length !== 2) {
    throw new HttpError(400, "invalid", `multipart upload has ${parts.length} parts, want 2`);
  }
  return parts;
}
