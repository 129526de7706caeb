// SPDX-License-Identifier: Apache-2.0
/**
 * The leadership endpoint of peer mode. The leader answers `GET /health/leadership/shard` with its
 * lockfile record, so followers learn that it is alive without reading storage; anyone else
 * answers 404 `Not leader`. The client side is {@link fetchLeaderRecord}.
 */
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import { NstanceError } from "../shared/errors.js";
import { type LockRecord, parseLockRecord, serializeLockRecord } from "./lockfile.js";

/** Path of the shard election's leadership endpoint (as in the reference). */
export const LEADERSHIP_SHARD_PATH = "/health/leadership/shard";

/** Default time limit of one peer request, in ms (the reference's peer timeout). */
export const DEFAULT_PEER_TIMEOUT_MS = 3_000;

/** Largest response body accepted from a peer, in bytes; a lockfile is under 300. */
const MAX_BODY_BYTES = 64 * 1024;

/** What the endpoint needs from the elector. */
export interface LeadershipSource {
  /** The current lockfile record while leading (lease valid), else `undefined`. */
  leaderRecord(): LockRecord | undefined;
}

/** A plain node:http request handler (fits `HttpServer` routes). */
export type LeadershipHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** Builds the handler: 200 + lockfile JSON when leader, 404 `Not leader` otherwise, 405 for non-GET. */
export function createLeadershipHandler(source: LeadershipSource): LeadershipHandler {
  return (req, res) => {
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET", "content-type": "text/plain" });
      res.end("Method Not Allowed\n");
      return;
    }
    const record = source.leaderRecord();
    if (!record) {
      res.writeHead(404, { "content-type": "text/plain", "cache-control": "no-store" });
      res.end("Not leader\n");
      return;
    }
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(serializeLockRecord(record));
  };
}

/** Options for {@link fetchLeaderRecord}. */
export interface FetchLeaderRecordOptions {
  /** PEM of the CA that signed the peers' certificates. With it HTTPS (TLS 1.3 only); without, HTTP. */
  ca?: string | Buffer;
  /** Time limit of the whole request, in ms. Defaults to {@link DEFAULT_PEER_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Request path. Defaults to {@link LEADERSHIP_SHARD_PATH}. */
  path?: string;
}

/** Splits `host:port` (IPv6 in brackets). */
function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  let host = addr.slice(0, Math.max(0, i));
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (i < 0 || host === "" || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new NstanceError("invalid_argument", `invalid leader address "${addr}": want host:port`);
  }
  return { host, port };
}

/**
 * Asks the leader at `addr` for its lockfile record. Returns the record on 200, `undefined` on
 * 404 (the peer is not leader); throws on anything else (network error, timeout, other status,
 * invalid record, certificate not signed by `ca`).
 */
export async function fetchLeaderRecord(
  addr: string,
  opts: FetchLeaderRecordOptions = {},
  signal?: AbortSignal,
): Promise<LockRecord | undefined> {
  const { host, port } = splitAddr(addr);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PEER_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  combined.throwIfAborted();
  const base: http.RequestOptions = {
    host,
    port,
    path: opts.path ?? LEADERSHIP_SHARD_PATH,
    method: "GET",
    headers: { accept: "application/json" },
    agent: false,
    signal: combined,
  };
  const { status, body } = await new Promise<{ status: number; body: string }>(
    (resolve, reject) => {
      const onResponse = (res: http.IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            res.destroy(
              new NstanceError(
                "unavailable",
                `peer ${addr}: response larger than ${MAX_BODY_BYTES} bytes`,
              ),
            );
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      };
      const req = opts.ca
        ? https.request(
            {
              ...base,
              ca: opts.ca,
              minVersion: "TLSv1.3",
              maxVersion: "TLSv1.3",
              rejectUnauthorized: true,
              // SNI must not be an IP address; certificate checks still use `host`.
              ...(isIP(host) === 0 ? { servername: host } : {}),
            },
            onResponse,
          )
        : http.request(base, onResponse);
      req.on("error", (err) => {
        reject(
          combined.aborted && timeout.aborted && !signal?.aborted
            ? new NstanceError(
                "deadline_exceeded",
                `peer ${addr}: no answer within ${timeoutMs}ms`,
                {
                  cause: err,
                },
              )
            : err,
        );
      });
      req.end();
    },
  );
  if (status === 404) return undefined;
  if (status !== 200) {
    throw new NstanceError(
      "unavailable",
      `peer ${addr}: HTTP ${status} ${body.trim().slice(0, 200)}`,
    );
  }
  return parseLockRecord(body);
}
