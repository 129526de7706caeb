// SPDX-License-Identifier: Apache-2.0
/**
 * The server side of bench/health-ingest.ts, run as a child process so its RSS and CPU are its
 * own. Mode `agent`: the real Agent service behind startApiServers (mTLS, role guard, SQLite in
 * WAL on disk, batched report storage). Mode `bare`: a grpc-js server with the same TLS and
 * options whose SubmitHealthReport only counts messages — the transport's limit. Talks to the
 * parent over IPC: `window` → the measured window; `stats` → counters, latency, RSS, event-loop delay.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { type handleClientStreamingCall, Server, type ServerReadableStream } from "@grpc/grpc-js";
import { openDatabase } from "../src/db/database.js";
import { insertPendingInstance, markInstanceRegistered } from "../src/db/instances-table.js";
import { loadCertificateAuthority } from "../src/pki/ca.js";
import { generateEd25519KeyPair, parseEd25519PrivateKey } from "../src/pki/ed25519-keys.js";
import { grpcServerCredentials } from "../src/pki/tls-options.js";
import type { Empty } from "../src/protocol/gen/google/protobuf/empty.js";
import {
  AgentServiceService,
  type HealthReportRequest,
} from "../src/protocol/gen/nstance/v1/agent.js";
import { AgentService } from "../src/server/agent-service/service.js";
import {
  DEFAULT_KEEPALIVE_TIME_MS,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  startApiServers,
} from "../src/server/api/grpc-servers.js";
import { configKey, loadConfigOnce } from "../src/server/config-loader.js";
import { ConfigStore } from "../src/server/config-store.js";
import { MemorySecretsStore } from "../src/server/secrets/secrets-store.js";
import { createLogger } from "../src/shared/logger.js";
import { MemoryStorage } from "../src/storage/memory-storage.js";
import { shardConfigText } from "../test/support/shard-fixture.js";

/** What the parent sends to start the server. */
export interface StartMessage {
  type: "start";
  mode: "agent" | "bare";
  /** Holds ca.pem, ca.key, server.pem, server.key and instances.json (IDs). */
  dir: string;
}

/**
 * The measured window, in unix seconds [from, to). Sent before the load starts (the server is idle
 * then, so it arrives at once); the server counts against it by its own clock, so figures do not
 * depend on when a busy server gets round to answering `stats`.
 */
export interface WindowMessage {
  type: "window";
  from: number;
  to: number;
}

/** What the child answers to `stats`. */
export interface StatsMessage {
  type: "stats";
  /** Reports handled within the window (stored, for `agent`; received, for `bare`). */
  handled: number;
  /** Reports handled since start. */
  handledTotal: number;
  refused: number;
  /** Reports shed under overload within the window (agent mode). */
  shed: number;
  /** Reports waiting for their commit (agent mode). */
  queued: number;
  /** Open health streams. */
  streams: number;
  /** Arrival → commit latency of the reports committed within the window. */
  p50Ms: number;
  p99Ms: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Longest event-loop delay seen within the window (timers firing late), ms. */
  eldMaxMs: number;
}

const logger = createLogger({ level: "warn", destination: process.stderr });
const eld = monitorEventLoopDelay({ resolution: 10 });

/** Counts within the window by this process's clock; see {@link WindowMessage}. */
class WindowCounter {
  from = Number.POSITIVE_INFINITY;
  to = Number.POSITIVE_INFINITY;
  handled = 0;
  shed = 0;
  readonly latencies: number[] = [];
  #started = false;

  #inWindow(): boolean {
    const s = Date.now() / 1000;
    if (s < this.from || s >= this.to) return false;
    if (!this.#started) {
      this.#started = true;
      eld.enable();
    }
    return true;
  }

  countHandled(latencyMs?: number): void {
    if (!this.#inWindow()) return;
    this.handled++;
    if (latencyMs !== undefined) this.latencies.push(latencyMs);
  }

  countShed(): void {
    if (this.#inWindow()) this.shed++;
  }

  percentile(p: number): number {
    const sorted = Float64Array.from(this.latencies).sort();
    if (sorted.length === 0) return 0;
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  }
}
const window = new WindowCounter();

async function startAgent(
  dir: string,
  tls: { caCertPem: string; certPem: string; keyPem: string },
) {
  const ids = JSON.parse(await readFile(join(dir, "instances.json"), "utf8")) as string[];
  const caKeyPem = await readFile(join(dir, "ca.key"), "utf8");
  const ca = await loadCertificateAuthority({ certPem: tls.caCertPem, keyPem: caKeyPem });
  const nonce = parseEd25519PrivateKey(generateEd25519KeyPair().privateKeyPem);
  const storage = new MemoryStorage({ name: "bench" });
  await storage.put(configKey("local"), await shardConfigText());
  const db = openDatabase({ path: join(dir, "db", "nstance.db") });
  const now = Date.now();
  db.transaction(() => {
    for (const id of ids) {
      insertPendingInstance(db, {
        id,
        tenant: "default",
        groupKey: "web",
        nonce: `nonce-${id}`,
        infraConfigHash: "sha256:bench",
        createdAt: now,
      });
      markInstanceRegistered(db, {
        id,
        registeredAt: now,
        instancePub: "bench",
        certSerial: "01",
        ip4: "10.0.0.1",
        hostname: id,
      });
    }
  })();
  const loaderOpts = { storage, shard: "local", cachedir: join(dir, "cache"), db, logger };
  const configStore = new ConfigStore({ ...loaderOpts, initial: await loadConfigOnce(loaderOpts) });
  const ctx = {
    clusterId: "local",
    shard: "local",
    prefix: "shard/local/",
    db,
    storage,
    configStore,
    identity: {
      clusterId: "local",
      ca,
      nonceSigningKey: nonce,
      nonceVerifyKey: nonce,
    },
    leadership: { isLeader: () => true, leader: () => ({ id: "bench", addr: "", term: 1 }) },
    logger,
  };
  const agents = new AgentService({ ctx, secrets: new MemorySecretsStore() });
  // Count into the window as reports are committed or shed (bench only: wraps the service's stats).
  const stats = agents.stats;
  const stored = stats.stored.bind(stats);
  const shed = stats.shed.bind(stats);
  stats.stored = (latencyMs: number) => {
    stored(latencyMs);
    window.countHandled(latencyMs);
  };
  stats.shed = () => {
    shed();
    window.countShed();
  };
  agents.start();
  const servers = await startApiServers({
    bind: { registration: "127.0.0.1:0", operator: "127.0.0.1:0", agent: "127.0.0.1:0" },
    tls,
    ctx,
    logger,
    agentService: agents.handlers(),
  });
  const addr = servers.addresses.agent;
  return {
    port: Number(addr.slice(addr.lastIndexOf(":") + 1)),
    stats: () => {
      const s = agents.stats.snapshot();
      return {
        handledTotal: s.stored,
        refused: s.refused,
        queued: agents.queuedReports,
        streams: agents.connections.size,
      };
    },
  };
}

async function startBare(tls: { caCertPem: string; certPem: string; keyPem: string }) {
  let received = 0;
  let open = 0;
  const submitHealthReport: handleClientStreamingCall<HealthReportRequest, Empty> = (
    call: ServerReadableStream<HealthReportRequest, Empty>,
    callback,
  ) => {
    open++;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      open--;
      callback(null, {});
    };
    call.on("data", () => {
      received++;
      window.countHandled();
    });
    call.on("end", finish);
    call.on("cancelled", finish);
    call.on("error", finish);
  };
  const server = new Server({
    "grpc.keepalive_time_ms": DEFAULT_KEEPALIVE_TIME_MS,
    "grpc.keepalive_timeout_ms": DEFAULT_KEEPALIVE_TIMEOUT_MS,
    "grpc.max_receive_message_length": DEFAULT_MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": DEFAULT_MAX_MESSAGE_BYTES,
  });
  server.addService(AgentServiceService, { submitHealthReport });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpcServerCredentials({ ...tls, requireClientCert: true }),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  return {
    port,
    stats: () => ({ handledTotal: received, refused: 0, queued: 0, streams: open }),
  };
}

// SIGTERM exits normally, so a `--cpu-prof` profile gets written.
process.on("SIGTERM", () => process.exit(0));

process.on("message", (msg: StartMessage) => {
  void (async () => {
    if (msg.type === "start") {
      const read = (f: string) => readFile(join(msg.dir, f), "utf8");
      const tls = {
        caCertPem: await read("ca.pem"),
        certPem: await read("server.pem"),
        keyPem: await read("server.key"),
      };
      const server = msg.mode === "agent" ? await startAgent(msg.dir, tls) : await startBare(tls);
      process.on("message", (m: { type: string }) => {
        if (m.type === "window") {
          const w = m as WindowMessage;
          window.from = w.from;
          window.to = w.to;
          process.send?.({ type: "window" });
        } else if (m.type === "stats") {
          const mem = process.memoryUsage();
          const reply: StatsMessage = {
            type: "stats",
            ...server.stats(),
            handled: window.handled,
            shed: window.shed,
            p50Ms: window.percentile(50),
            p99Ms: window.percentile(99),
            rssBytes: mem.rss,
            heapUsedBytes: mem.heapUsed,
            eldMaxMs: eld.max / 1e6,
          };
          process.send?.(reply);
        }
      });
      process.send?.({ type: "ready", port: server.port });
    }
  })().catch((err: unknown) => {
    process.stderr.write(`bench server failed: ${String(err)}\n`);
    process.exit(1);
  });
});
