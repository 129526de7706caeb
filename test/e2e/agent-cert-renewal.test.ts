// SPDX-License-Identifier: Apache-2.0
// No agent loses its identity when its client certificate's lifetime runs out: a real server
// (fake provider, one instance) and a real nstance-agent process of that instance, whose Agent
// connection runs through a TCP proxy. With NSTANCE_CERT_RENEW_BEFORE just under the lifetime the
// agent renews every few seconds. Each renewal is asked for with the certificate the one before
// issued (the server renews only from the current serial), identity.crt, SQLite and the storage
// record follow, and the agent keeps reporting; after its connections are cut it reconnects, and
// after a restart it starts from the renewed identity.crt, and in both cases renews on from it.
import assert from "node:assert/strict";
import { createPublicKey, type KeyObject, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import BetterSqlite3 from "better-sqlite3";
import { type AgentProcess, startAgentProcess } from "../agent/agent-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import {
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../support/shard-servers.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { FLEET_WAIT_MS } from "./local-fleet.js";

/**
 * Renew when this much of the certificate's lifetime is left: 3 s less than the default 24 h TTL,
 * so each certificate is renewed about 3 s after it was issued (its notBefore is 5 min earlier).
 */
const RENEW_BEFORE = "23h59m57s";

interface RenewalDecision {
  at: number;
  serial: string;
  previousSerial: string;
}

/** Polls `check` until it returns a value other than undefined/false (bounded by FLEET_WAIT_MS). */
async function poll<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  recent: () => string,
): Promise<T> {
  const deadline = Date.now() + FLEET_WAIT_MS;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${recent()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The SPKI PEM of a key, or of a PEM private or public key. */
const spki = (k: KeyObject | string): string =>
  (typeof k === "string" ? createPublicKey(k) : k)
    .export({ type: "spki", format: "pem" })
    .toString();

describe("agent certificate renewal, end to end", { concurrency: false }, () => {
  let dir: string;
  let server: ShardServer;
  let proxy: TcpProxy;
  let agent: AgentProcess;
  let agentEnv: Record<string, string>;
  let identityDir: string;
  let instanceId: string;
  let db: BetterSqlite3.Database | undefined;
  /** Serial of the certificate issued at registration. */
  let firstSerial: string;

  const recent = (): string =>
    `${server?.proc.recent() ?? ""}${agent?.recent() ?? ""}\nrenewals: ${JSON.stringify(renewals().slice(-5))}`;

  function sqlite(): BetterSqlite3.Database {
    db ??= new BetterSqlite3(join(dir, `cache-${server.id}`, "db", "nstance.db"), {
      readonly: true,
      fileMustExist: true,
    });
    return db;
  }

  function row(): { certSerial: string | null; healthAt: number | null } {
    const r = sqlite()
      .prepare("SELECT cert_serial, health_at FROM instances WHERE id = ?")
      .get(instanceId) as { cert_serial: string | null; health_at: number | null } | undefined;
    return { certSerial: r?.cert_serial ?? null, healthAt: r?.health_at ?? null };
  }

  function renewals(): RenewalDecision[] {
    let rows: Array<{ at: number; evidence: string }>;
    try {
      rows = sqlite()
        .prepare(
          "SELECT at, evidence FROM decisions WHERE instance_id = ? AND decision = 'certificate_renewed' ORDER BY seq",
        )
        .all(instanceId) as Array<{ at: number; evidence: string }>;
    } catch {
      return []; // no database yet (only in failure messages)
    }
    return rows.map((r) => {
      const e = JSON.parse(r.evidence) as { cert_serial: string; previous_serial: string };
      return { at: r.at, serial: e.cert_serial, previousSerial: e.previous_serial };
    });
  }

  function lastDisconnectAt(): number | undefined {
    const r = sqlite()
      .prepare(
        "SELECT MAX(at) AS at FROM decisions WHERE instance_id = ? AND decision = 'agent_disconnected'",
      )
      .get(instanceId) as { at: number | null };
    return r.at ?? undefined;
  }

  async function storedCertificate(): Promise<{ serial: string; pem: string }> {
    const pem = await readFile(join(identityDir, "identity.crt"), "utf8");
    return { serial: new X509Certificate(pem).serialNumber.toLowerCase(), pem };
  }

  async function instanceRecord(): Promise<Record<string, unknown>> {
    const recDir = join(dir, "bucket", "shard", "local", "instance");
    const name = (await readdir(recDir)).find((n) => n.includes(instanceId))!;
    return JSON.parse(await readFile(join(recDir, name), "utf8")) as Record<string, unknown>;
  }

  /** The renewals form one chain from the registration certificate: each from the one before. */
  function assertChain(list: RenewalDecision[]): void {
    let previous = firstSerial;
    for (const d of list) {
      assert.equal(d.previousSerial, previous, `renewal to ${d.serial} asked for with ${previous}`);
      previous = d.serial;
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-e2e-cert-renewal-"));
    const bucket = join(dir, "bucket");
    await writeShardConfig(
      bucket,
      await shardConfigText([
        ...STEADY_ELECTION,
        [["shard", "infra", "provider"], "fake"],
        [["shard", "garbage_collection", "registration_timeout"], "5m"],
        [["groups", "default", "web", "size"], 1],
      ]),
    );
    [server] = (await startShardServers({
      count: 1,
      workDir: dir,
      storageArgs: ["--storage", "file", "--bucket", bucket],
    })) as [ShardServer];
    await waitForSingleLeader([server], FLEET_WAIT_MS);

    // The fake provider runs no agent: this test runs the instance's agent itself, with the
    // nonce the server keeps in the instance record until the agent registers.
    const recDir = join(bucket, "shard", "local", "instance");
    const record = await poll(
      "the instance record with its registration nonce",
      async () => {
        for (const name of await readdir(recDir).catch(() => [] as string[])) {
          const rec = JSON.parse(await readFile(join(recDir, name), "utf8")) as {
            instance_id: string;
            registration_jwt?: string;
          };
          if (rec.registration_jwt) return rec;
        }
        return undefined;
      },
      recent,
    );
    instanceId = record.instance_id;
    identityDir = join(dir, "agent", "identity");
    await mkdir(identityDir, { recursive: true, mode: 0o700 });
    await writeFile(
      join(identityDir, "ca.crt"),
      await readFile(join(bucket, "cluster", "ca.crt")),
      { mode: 0o600 },
    );
    await writeFile(join(identityDir, "nonce.jwt"), `${record.registration_jwt}\n`, {
      mode: 0o600,
    });
    proxy = await startTcpProxy("127.0.0.1", server.ports.agent);
    agentEnv = {
      NSTANCE_IDENTITY_DIR: identityDir,
      NSTANCE_KEYS_DIR: join(dir, "agent", "keys"),
      NSTANCE_RECV_DIR: join(dir, "agent", "recv"),
      NSTANCE_SERVER_REGISTRATION_ADDR: `localhost:${server.ports.registration}`,
      NSTANCE_SERVER_AGENT_ADDR: `localhost:${proxy.port}`,
      NSTANCE_INSTANCE_ID: instanceId,
      NSTANCE_INSTANCE_IPV4: "127.0.0.1",
      NSTANCE_METRICS_INTERVAL: "1s",
      NSTANCE_PROVIDER: "none",
      NSTANCE_CERT_RENEW_BEFORE: RENEW_BEFORE,
    };
    agent = startAgentProcess({ env: agentEnv });
    await agent.waitLog((l) => l.msg === "Registered", FLEET_WAIT_MS);
    firstSerial = (await storedCertificate()).serial;
  });

  after(async () => {
    db?.close();
    await agent?.stop();
    await proxy?.stop();
    await server?.proc.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("renews within seconds: new serial, same key, identity.crt, SQLite and the record follow", async (t) => {
    const registeredAt = Date.now();
    await poll("two renewals", () => renewals().length >= 2, recent);
    t.diagnostic(`two renewals ${Date.now() - registeredAt} ms after the registration`);
    // Renewals go on every few seconds: wait for a moment where all three copies agree.
    const { stored, record } = await poll(
      "identity.crt, SQLite and the record on one serial",
      async () => {
        const stored = await storedCertificate();
        const record = await instanceRecord();
        return stored.serial === row().certSerial && record.cert_serial === stored.serial
          ? { stored, record }
          : undefined;
      },
      recent,
    );
    assert.notEqual(stored.serial, firstSerial);
    const key = await readFile(join(identityDir, "identity.key"), "utf8");
    assert.equal(spki(new X509Certificate(stored.pem).publicKey), spki(key), "same identity key");
    assert.match(new X509Certificate(stored.pem).subject, new RegExp(`CN=${instanceId}`));
    assert.ok(typeof record.cert_renewed_at === "string");
    assertChain(renewals());
    const renewedLog = agent.logs.find((l) => l.msg === "Certificate renewed");
    assert.ok(typeof renewedLog?.serial === "string" && typeof renewedLog.expires_at === "string");
    const since = renewals()[1]!.at;
    await poll("a report after the second renewal", () => (row().healthAt ?? 0) > since, recent);
  });

  it("after its connections are cut, it reconnects and renews on from the renewed certificate", async (t) => {
    const before = renewals().length;
    const cutAt = Date.now();
    proxy.cutAll();
    const lostAt = await poll(
      "the server to see the health stream lost",
      () => {
        const at = lastDisconnectAt();
        return at !== undefined && at >= cutAt ? at : undefined;
      },
      recent,
    );
    await poll("a report on a new connection", () => (row().healthAt ?? 0) > lostAt, recent);
    t.diagnostic(`reporting again ${(row().healthAt ?? 0) - cutAt} ms after the cut`);
    await poll(
      "a renewal after the cut",
      () => renewals().some((d, i) => i >= before && d.at > lostAt),
      recent,
    );
    assertChain(renewals());
  });

  it("restarted, it starts from the renewed identity.crt and renews on from it", async (t) => {
    assert.equal(await agent.stop("SIGTERM"), 0);
    const stored = await storedCertificate();
    assert.notEqual(stored.serial, firstSerial, "identity.crt holds a renewed certificate");
    const before = renewals().length;
    const restartAt = Date.now();
    agent = startAgentProcess({ env: agentEnv });
    await agent.waitLog((l) => l.msg === "Using stored identity", FLEET_WAIT_MS);
    await poll("a report after the restart", () => (row().healthAt ?? 0) > restartAt, recent);
    t.diagnostic(`reporting ${(row().healthAt ?? 0) - restartAt} ms after the restart`);
    await agent.waitLog((l) => l.msg === "Certificate renewed", FLEET_WAIT_MS);
    await poll("a renewal after the restart", () => renewals().length > before, recent);
    assertChain(renewals());
    assert.ok(
      !agent.logs.some((l) => l.msg === "Registering with server" || l.level === "error"),
      `no new registration, no error${agent.recent()}`,
    );
  });
});
