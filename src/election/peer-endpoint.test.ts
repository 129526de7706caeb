// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { silentLogger } from "../shared/logger.js";
import { MemoryStorage } from "../storage/memory-storage.js";
import type { LockRecord } from "./lockfile.js";
import { LockfileElector } from "./lockfile-elector.js";
import {
  createLeadershipHandler,
  fetchLeaderRecord,
  LEADERSHIP_SHARD_PATH,
  type LeadershipHandler,
} from "./peer-endpoint.js";
import { FaultyStorage } from "./testing.js";

const RECORD: LockRecord = {
  leader_id: "server-1",
  leader_addr: "localhost:8991",
  last_updated: "2025-01-02T03:04:05.006Z",
  term: 3,
  released: false,
};

/** Routes the leadership path to `handler`, anything else to 404. */
function route(handler: LeadershipHandler): http.RequestListener {
  return (req, res) => {
    if (req.url === LEADERSHIP_SHARD_PATH) return handler(req, res);
    res.writeHead(404);
    res.end();
  };
}

async function listen(server: http.Server | https.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `localhost:${(server.address() as AddressInfo).port}`;
}

function close(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A self-signed Ed25519 certificate for `localhost` (made with the openssl CLI). */
async function makeCert(dir: string, name: string): Promise<{ key: string; cert: string }> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ed25519",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  return { key: await readFile(key, "utf8"), cert: await readFile(cert, "utf8") };
}

describe("leadership endpoint", () => {
  let leading: LockRecord | undefined = RECORD;
  const handler = createLeadershipHandler({ leaderRecord: () => leading });
  let plain: http.Server;
  let plainAddr: string;

  before(async () => {
    plain = http.createServer(route(handler));
    plainAddr = await listen(plain);
  });
  after(() => close(plain));

  it("answers 200 with the record while leader, 404 Not leader otherwise, 405 for non-GET", async () => {
    leading = RECORD;
    const ok = await fetch(`http://${plainAddr}${LEADERSHIP_SHARD_PATH}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "application/json");
    assert.deepEqual(await ok.json(), RECORD);

    leading = undefined;
    const no = await fetch(`http://${plainAddr}${LEADERSHIP_SHARD_PATH}`);
    assert.equal(no.status, 404);
    assert.equal((await no.text()).trim(), "Not leader");

    const post = await fetch(`http://${plainAddr}${LEADERSHIP_SHARD_PATH}`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET");
    await post.text();
  });

  it("fetchLeaderRecord over HTTP: record on 200, undefined on 404", async () => {
    leading = RECORD;
    assert.deepEqual(await fetchLeaderRecord(plainAddr), RECORD);
    leading = undefined;
    assert.equal(await fetchLeaderRecord(plainAddr), undefined);
  });

  it("fetchLeaderRecord rejects other statuses, bad records, bad addresses and silence", async () => {
    const odd = http.createServer((req, res) => {
      if (req.url === "/health/leadership/shard") {
        res.writeHead(500);
        res.end("boom");
      } else if (req.url === "/corrupt") {
        res.writeHead(200);
        res.end('{"leader_id":1}');
      }
      // Any other path: never answer.
    });
    const addr = await listen(odd);
    try {
      await assert.rejects(fetchLeaderRecord(addr), /HTTP 500 boom/);
      await assert.rejects(fetchLeaderRecord(addr, { path: "/corrupt" }), /corrupt lockfile/);
      await assert.rejects(fetchLeaderRecord("no-port"), /invalid leader address/);
      const started = performance.now();
      await assert.rejects(
        fetchLeaderRecord(addr, { path: "/silent", timeoutMs: 200 }),
        /no answer within 200ms/,
      );
      assert.ok(performance.now() - started < 5_000);
      const ctl = new AbortController();
      const pending = fetchLeaderRecord(addr, { path: "/silent" }, ctl.signal);
      ctl.abort(new Error("caller gave up"));
      await assert.rejects(pending, /caller gave up|aborted/);
      // Nothing listens: connection refused.
      await close(odd);
      await assert.rejects(fetchLeaderRecord(addr), /ECONNREFUSED/);
    } finally {
      if (odd.listening) await close(odd);
    }
  });

  describe("over TLS", () => {
    let dir: string;
    let server: https.Server;
    let addr: string;
    let ca: string;
    let otherCa: string;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "nstance-peer-"));
      const own = await makeCert(dir, "server");
      otherCa = (await makeCert(dir, "other")).cert;
      ca = own.cert;
      server = https.createServer(
        { key: own.key, cert: own.cert, minVersion: "TLSv1.3" },
        route(handler),
      );
      addr = await listen(server);
    });
    after(async () => {
      await close(server);
      await rm(dir, { recursive: true, force: true });
    });

    it("verifies the peer against the given CA over TLS 1.3", async () => {
      leading = RECORD;
      let protocol: string | null = null;
      server.once("secureConnection", (sock) => {
        protocol = sock.getProtocol();
      });
      assert.deepEqual(await fetchLeaderRecord(addr, { ca }), RECORD);
      assert.equal(protocol, "TLSv1.3");
      await assert.rejects(
        fetchLeaderRecord(addr, { ca: otherCa }),
        /self[- ]signed|verify|certificate/i,
      );
      // Without a CA the client speaks plain HTTP, which a TLS listener does not understand.
      await assert.rejects(fetchLeaderRecord(addr, { timeoutMs: 2_000 }));
    });
  });

  it("peer mode end to end: followers read no storage while the leader's endpoint answers", async () => {
    const shared = new MemoryStorage();
    const timings = {
      frequentIntervalMs: 100,
      infrequentIntervalMs: 1_000,
      leaderTimeoutMs: 600,
      safetyMarginMs: 100,
    };
    const aStorage = new FaultyStorage({ inner: shared });
    const bStorage = new FaultyStorage({ inner: shared });
    const server = http.createServer();
    const addr = await listen(server);
    const a = new LockfileElector({
      ...timings,
      storage: aStorage,
      key: "shard/s/leader.json",
      id: "a",
      advertiseAddr: addr,
      logger: silentLogger,
    });
    server.on("request", route(createLeadershipHandler(a)));
    const b = new LockfileElector({
      ...timings,
      storage: bStorage,
      key: "shard/s/leader.json",
      id: "b",
      advertiseAddr: "localhost:1",
      fetchPeer: (peer, signal) => fetchLeaderRecord(peer, { timeoutMs: 500 }, signal),
    });
    try {
      a.start();
      await waitFor(() => a.isLeader(), 2_000);
      b.start();
      await waitFor(() => b.stats().peerRequests > 3, 3_000);
      const reads = bStorage.counts.get;
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(bStorage.counts.get, reads, "no storage reads while the peer answers");
      assert.ok(a.isLeader());
      // The leader's endpoint goes away (and so does the leader): storage, then takeover.
      await close(server);
      aStorage.setFault("stall");
      await waitFor(() => b.isLeader(), 5_000);
      assert.ok(bStorage.counts.get > reads);
      assert.equal(b.currentTerm(), 2);
      assert.equal(a.isLeader(), false);
    } finally {
      aStorage.setFault("none");
      await Promise.all([a.stop(), b.stop()]);
      if (server.listening) await close(server);
    }
  });
});

async function waitFor(pred: () => boolean, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > end) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
