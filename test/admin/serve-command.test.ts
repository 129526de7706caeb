// SPDX-License-Identifier: Apache-2.0
// `nstance-admin serve` through runAdmin (the binary's code): it refuses to start without a
// usable token file, prints the URL and the fingerprint of the certificate it really serves, answers
// the API over a fake Operator API reached with mutual TLS, and stops when interrupted.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { runAdmin } from "../../src/admin/main.js";
import { writeOperatorIdentity } from "../../src/admin/service/operator-identity.js";
import { captureIo, FakeOperatorServer } from "../../src/admin/testing.js";
import { createTestPki, issueTestClientCertificate } from "../../src/pki/testing.js";
import { httpsRequest } from "./serve-client.js";

const TOKEN = "serve-command-token-0123456789";

/** The certificate a TLS server presents, without trusting it (the test compares fingerprints). */
function servedCertificate(host: string, port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port, servername: "localhost", rejectUnauthorized: false },
      () => {
        const raw = socket.getPeerCertificate().raw;
        socket.end();
        resolve(new X509Certificate(raw));
      },
    );
    socket.on("error", reject);
  });
}

async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("nstance-admin serve", () => {
  let dir = "";
  let identityDir = "";
  let tokenPath = "";
  let op: FakeOperatorServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-serve-cmd-"));
    identityDir = join(dir, "identity");
    tokenPath = join(dir, "ops.token");
    await writeFile(tokenPath, `${TOKEN}\n`, { mode: 0o600 });
    const pki = await createTestPki("c1");
    const cert = await issueTestClientCertificate(pki.ca, { clientId: "op1", role: "operator" });
    await writeOperatorIdentity(identityDir, { caCertPem: pki.caCertPem, ...cert });
    op = await new FakeOperatorServer().start(pki);
    op.addGroup({ key: "web", template: "knc", size: 3, actualSize: 2 });
  });
  after(async () => {
    await op?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const base = () => [
    "serve",
    "--servers",
    `local=${op.address}`,
    "--identity-dir",
    identityDir,
    "--bind",
    "127.0.0.1:0",
  ];

  it("refuses to start without a token file, or with an unusable one (exit 2)", async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /serve needs at least one --token-file/],
      [["--token-file", join(dir, "missing.token")], /token file .*missing\.token: .*ENOENT/],
      [["--token-file", "name="], /invalid --token-file/],
      [
        ["--token-file", tokenPath, "--tls-cert", tokenPath],
        /--tls-cert and --tls-key go together/,
      ],
      [["--token-file", tokenPath, "--rate-limit", "0"], /invalid --rate-limit "0"/],
    ];
    await writeFile(join(dir, "short.token"), "short", { mode: 0o600 });
    cases.push([["--token-file", join(dir, "short.token")], /at least 16 characters/]);
    for (const [extra, re] of cases) {
      const io = captureIo();
      const code = await runAdmin([...base(), ...extra], io);
      assert.equal(code, 2, `${extra.join(" ")}: ${io.err()}`);
      assert.match(io.err(), re);
      assert.equal(io.out(), "", "nothing was served");
    }
  });

  it("serves the API with the printed certificate until interrupted", async () => {
    const io = captureIo();
    const ac = new AbortController();
    let port = 0;
    const done = runAdmin(
      [...base(), "--token-file", `ops=${tokenPath}`, "--rate-limit-burst", "50"],
      io,
      ac.signal,
    );
    try {
      const url = await waitFor("the URL", () => /at (https:\/\/\S+)/.exec(io.out())?.[1]);
      assert.match(url, /^https:\/\/localhost:\d+\/$/);
      assert.match(io.out(), /tokens: +ops \(.*ops\.token\); read on every request/);
      assert.match(io.out(), /self-signed for localhost, 127\.0\.0\.1, ::1/);
      assert.match(io.out(), /rate limit: +50 at once, 20\/s per client address/);
      assert.doesNotMatch(io.out() + io.err(), new RegExp(TOKEN), "the token is never printed");
      const printed = /fingerprint: +SHA-256 ([0-9A-F:]+)/.exec(io.out())?.[1];
      const served = await servedCertificate("127.0.0.1", Number(new URL(url).port));
      assert.equal(
        served.fingerprint256,
        printed,
        "the printed fingerprint is the served certificate's",
      );

      const r = await httpsRequest(`${url}group/list`, { ca: served.toString(), token: TOKEN });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.results[0].shard, "local");
      assert.deepEqual(
        r.json.results[0].groups.map((g: { key: string; size: number }) => [g.key, g.size]),
        [["web", 3]],
      );
      const scaled = await httpsRequest(`${url}group/scale`, {
        method: "POST",
        ca: served.toString(),
        token: TOKEN,
        body: JSON.stringify({ group: "web", size: 4 }),
      });
      assert.equal(scaled.status, 200, "one shard: no shard= needed");
      assert.equal(op.groups.get("default/web")?.size, 4);
      op.notLeaderMessage = "not the shard leader; the leader is s2";
      const refused = await httpsRequest(`${url}group/scale`, {
        method: "POST",
        ca: served.toString(),
        token: TOKEN,
        body: JSON.stringify({ group: "web", size: 5 }),
      });
      op.notLeaderMessage = undefined;
      assert.equal(refused.status, 409);
      assert.match(refused.json.results[0].error.message, /not the shard leader/);
      port = Number(new URL(url).port);
    } finally {
      ac.abort();
    }
    assert.equal(await done, 0, io.err());
    await assert.rejects(servedCertificate("127.0.0.1", port), /ECONNREFUSED/, "stopped listening");
  });
});
