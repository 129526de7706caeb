// SPDX-License-Identifier: Apache-2.0
// The CLI in-process: argument validation (exit 2), output formats and exit codes against fake
// Operator APIs over real mutual TLS.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createTestPki, issueTestClientCertificate, type TestPki } from "../pki/testing.js";
import { runAdmin } from "./main.js";
import { writeOperatorIdentity } from "./service/operator-identity.js";
import { type CapturedIo, captureIo, FakeOperatorServer } from "./testing.js";

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function run(
  argv: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; io: CapturedIo }> {
  const io = captureIo(env);
  const code = await runAdmin(argv, io);
  return { code, io };
}

describe("nstance-admin usage errors exit 2 with one clear line", () => {
  const cases: Array<[string, string[], RegExp, Record<string, string>?]> = [
    ["no command", [], /Usage: nstance-admin/],
    ["a command group without a subcommand", ["group"], /Usage: nstance-admin group/],
    ["an unknown command", ["group", "lst"], /error: unknown command 'lst'/],
    ["an unknown option", ["group", "list", "--bogus"], /error: unknown option '--bogus'/],
    ["a missing argument", ["group", "scale", "web"], /error: missing required argument 'size'/],
    [
      "no --servers",
      ["group", "list"],
      /error: --servers is required \(or NSTANCE_ADMIN_SERVERS\)/,
    ],
    [
      "a malformed --servers",
      ["group", "list", "--servers", "a:1"],
      /error: --servers: invalid server list: "a:1" is not shard=host:port/,
    ],
    [
      "--shard with --all-shards",
      ["group", "list", "--servers", "a=h:1,b=h:2", "--shard", "a", "--all-shards"],
      /error: --shard and --all-shards are mutually exclusive/,
    ],
    [
      "neither --shard nor --all-shards with several servers",
      ["group", "list", "--servers", "a=h:1,b=h:2"],
      /error: choose a shard with --shard \(or NSTANCE_ADMIN_SHARD\), or use --all-shards/,
    ],
    [
      "a shard not in --servers",
      ["group", "list", "--servers", "a=h:1", "--shard", "z"],
      /error: shard z is not in the server list \(known: a\)/,
    ],
    [
      "a shard from the environment not in the servers from the environment",
      ["group", "list"],
      /error: shard z is not in the server list/,
      { NSTANCE_ADMIN_SERVERS: "a=h:1", NSTANCE_ADMIN_SHARD: "z" },
    ],
    [
      "a bad --timeout",
      ["group", "list", "--servers", "a=h:1", "--timeout", "5d"],
      /error: invalid --timeout "5d"/,
    ],
    ["a negative size", ["group", "scale", "web", "-1"], /error: invalid size "-1"/],
    ["a non-numeric size", ["group", "scale", "web", "lots"], /error: invalid size "lots"/],
    [
      "a fractional --size",
      ["group", "create", "web", "--template", "t", "--size", "1.5"],
      /invalid --size "1.5"/,
    ],
    ["create without --template", ["group", "create", "web"], /error: --template is required/],
    [
      "a --var without =",
      ["group", "create", "web", "--template", "t", "--var", "novalue"],
      /invalid --var "novalue"/,
    ],
    [
      "register-operator without a mode",
      ["cluster", "register-operator"],
      /error: give --nonce or --nonce-file with --registration-addr \(nonce mode\), or --storage and --bucket/,
    ],
    [
      "both --nonce and --nonce-file",
      [
        "cluster",
        "register-operator",
        "--nonce",
        "x",
        "--nonce-file",
        "f",
        "--registration-addr",
        "h:1",
      ],
      /mutually exclusive/,
    ],
    [
      "nonce mode without --registration-addr",
      ["cluster", "register-operator", "--nonce", "x"],
      /nonce mode needs --registration-addr/,
    ],
    [
      "direct-mode flags in nonce mode",
      [
        "cluster",
        "register-operator",
        "--nonce",
        "x",
        "--registration-addr",
        "h:1",
        "--tenant",
        "t",
      ],
      /--tenant only apply to direct mode/,
    ],
    [
      "nonce-mode flags in direct mode",
      [
        "cluster",
        "register-operator",
        "--storage",
        "file",
        "--bucket",
        "/tmp/x",
        "--ca-file",
        "ca",
      ],
      /--ca-file only apply to nonce mode/,
    ],
    [
      "nonce mode without a CA",
      [
        "cluster",
        "register-operator",
        "--nonce",
        "x",
        "--registration-addr",
        "h:1",
        "--identity-dir",
        "IDDIR",
      ],
      /nonce mode needs the cluster CA/,
    ],
    [
      "cluster nonce without --cluster-id",
      ["cluster", "nonce", "--storage", "file", "--bucket", "b"],
      /--cluster-id is required/,
    ],
    [
      "cluster nonce with an unknown storage",
      ["cluster", "nonce", "--cluster-id", "c1", "--storage", "ftp", "--bucket", "b"],
      /unknown --storage "ftp"/,
    ],
    [
      "cluster nonce with a bad --expiry",
      [
        "cluster",
        "nonce",
        "--cluster-id",
        "c1",
        "--storage",
        "file",
        "--bucket",
        "b",
        "--expiry",
        "0s",
      ],
      /invalid --expiry "0s"/,
    ],
    [
      "both encryption key flags",
      [
        "cluster",
        "nonce",
        "--cluster-id",
        "c1",
        "--storage",
        "file",
        "--bucket",
        "b",
        "--encryption-key-env",
        "K",
        "--encryption-key-file",
        "f",
      ],
      /mutually exclusive/,
    ],
    [
      "an unset encryption key variable",
      [
        "cluster",
        "nonce",
        "--cluster-id",
        "c1",
        "--storage",
        "file",
        "--bucket",
        "b",
        "--encryption-key-env",
        "NOPE",
      ],
      /encryption key environment variable NOPE is not set/,
    ],
    [
      "an encryption key of the wrong length",
      [
        "cluster",
        "nonce",
        "--cluster-id",
        "c1",
        "--storage",
        "file",
        "--bucket",
        "b",
        "--encryption-key-env",
        "K",
      ],
      /must be 32 bytes .* got 5 bytes/,
      { K: "short" },
    ],
  ];

  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-usage-"));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  for (const [name, argv, message, env] of cases) {
    it(name, async () => {
      const args = argv.map((a) => (a === "IDDIR" ? join(tmp, "id") : a));
      const { code, io } = await run(args, env);
      assert.equal(code, 2, `stderr: ${io.err()}`);
      assert.match(io.err(), message);
      assert.equal(io.out(), "", "nothing on stdout");
    });
  }

  it("keeps the secret out of the wrong-length message", async () => {
    const secret = "not-a-32-byte-key-but-secret";
    const { io } = await run(
      [
        "cluster",
        "nonce",
        "--cluster-id",
        "c1",
        "--storage",
        "file",
        "--bucket",
        "b",
        "--encryption-key-env",
        "K",
      ],
      { K: secret },
    );
    assert.doesNotMatch(io.err(), new RegExp(secret));
  });

  it("prints help and the version with exit 0", async () => {
    const help = await run(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.io.out(), /--servers <list>/);
    const sub = await run(["group", "create", "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.io.out(), /--var <key=value>/);
    assert.match(sub.io.out(), /--all-shards/, "global flags appear in command help");
    const version = await run(["--version"]);
    assert.equal(version.code, 0);
    assert.match(version.io.out(), /^\d+\.\d+\.\d+/);
  });

  it("adds a usage hint naming the command", async () => {
    const { io } = await run(["group", "create", "web"]);
    assert.match(io.err(), /Run 'nstance-admin group create --help' for usage\./);
  });

  it("refuses a missing identity with exit 2 and says how to get one", async () => {
    const { code, io } = await run([
      "group",
      "list",
      "--servers",
      "a=localhost:1",
      "--identity-dir",
      join(tmp, "missing"),
    ]);
    assert.equal(code, 2);
    assert.match(
      io.err(),
      /has no ca\.crt; register first with "nstance-admin cluster register-operator"/,
    );
  });
});

describe("nstance-admin group and config commands", () => {
  let pki: TestPki;
  let tmp: string;
  let idDir: string;
  let s1: FakeOperatorServer;
  let s2: FakeOperatorServer;
  let servers: string;
  let downServers: string;

  before(async () => {
    pki = await createTestPki("c1");
    tmp = await mkdtemp(join(tmpdir(), "nstance-admin-cli-"));
    idDir = join(tmp, "identity");
    const op = await issueTestClientCertificate(pki.ca, { clientId: "op1", role: "operator" });
    await writeOperatorIdentity(idDir, { caCertPem: pki.caCertPem, ...op });
    s1 = await new FakeOperatorServer().start(pki);
    s2 = await new FakeOperatorServer().start(pki);
    s1.addGroup({
      key: "web",
      template: "knc",
      size: 3,
      actualSize: 2,
      isStatic: true,
      providerIds: ["i-1", "i-2"],
    });
    s2.addGroup({ key: "web", template: "knc", size: 1, actualSize: 1, instanceType: "m6i.large" });
    servers = `us-west-2a=${s1.address},us-west-2b=${s2.address}`;
    downServers = `${servers},us-west-2c=localhost:${await closedPort()}`;
  });

  after(async () => {
    await Promise.all([s1.stop(), s2.stop()]);
    await rm(tmp, { recursive: true, force: true });
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(args, { NSTANCE_ADMIN_IDENTITY_DIR: idDir, ...env });

  it("group list --all-shards prints one aligned table labelled by shard", async () => {
    const { code, io } = await cli(["group", "list", "--servers", servers, "--all-shards"]);
    assert.equal(code, 0, io.err());
    assert.equal(
      io.out(),
      "SHARD       GROUP  TEMPLATE  SIZE  ACTUAL  INSTANCE_TYPE  SUBNET_POOL  STATIC\n" +
        "us-west-2a  web    knc       3     2       -              -            yes\n" +
        "us-west-2b  web    knc       1     1       m6i.large      -            no\n",
    );
    assert.equal(io.err(), "");
  });

  it("takes servers and shard from the environment, flags after the command included", async () => {
    const { code, io } = await cli(["group", "list", "--json"], {
      NSTANCE_ADMIN_SERVERS: servers,
      NSTANCE_ADMIN_SHARD: "us-west-2b",
    });
    assert.equal(code, 0, io.err());
    const doc = JSON.parse(io.out()) as { results: Array<{ shard: string; groups: unknown[] }> };
    assert.deepEqual(
      doc.results.map((r) => r.shard),
      ["us-west-2b"],
    );
    assert.deepEqual(doc.results[0]!.groups, [
      {
        key: "web",
        tenant: "default",
        template: "knc",
        size: 1,
        actual_size: 1,
        instance_type: "m6i.large",
        subnet_pool: "",
        vars: {},
        is_static: false,
        etag: "etag-web",
        provider_ids: [],
      },
    ]);
  });

  it("--all-shards on the command line wins over NSTANCE_ADMIN_SHARD", async () => {
    const { code, io } = await cli(["--all-shards", "--json", "group", "list"], {
      NSTANCE_ADMIN_SERVERS: servers,
      NSTANCE_ADMIN_SHARD: "us-west-2b",
    });
    assert.equal(code, 0, io.err());
    assert.equal((JSON.parse(io.out()) as { results: unknown[] }).results.length, 2);
  });

  it("an unreachable shard: the others are still printed, its error goes to stderr, exit 3", async () => {
    const { code, io } = await cli([
      "group",
      "list",
      "--servers",
      downServers,
      "--all-shards",
      "--timeout",
      "2s",
    ]);
    assert.equal(code, 3);
    assert.match(io.out(), /^us-west-2a +web/m);
    assert.match(io.out(), /^us-west-2b +web/m);
    assert.match(
      io.err(),
      /^error: shard us-west-2c \(localhost:\d+\): cannot reach the server: connect ECONNREFUSED/m,
    );
  });

  it("--json carries per-shard errors with their code", async () => {
    const { code, io } = await cli([
      "group",
      "list",
      "--servers",
      downServers,
      "--all-shards",
      "--json",
      "--timeout",
      "2s",
    ]);
    assert.equal(code, 3);
    const doc = JSON.parse(io.out()) as {
      results: Array<{ ok: boolean; error?: { code: string } }>;
    };
    assert.deepEqual(
      doc.results.map((r) => (r.ok ? "ok" : r.error?.code)),
      ["ok", "ok", "unavailable"],
    );
    assert.equal(io.err(), "", "JSON mode keeps stderr for whole-command errors");
  });

  it("group status prints details, and exit 4 for a group a shard does not have", async () => {
    s1.addGroup({ key: "db", template: "pg", size: 2, vars: { tier: "gold", az: "a" } });
    const ok = await cli(["group", "status", "db", "--servers", servers, "--shard", "us-west-2a"]);
    assert.equal(ok.code, 0, ok.io.err());
    assert.match(ok.io.out(), /^Group: +db$/m);
    assert.match(ok.io.out(), /^Vars: +az=a, tier=gold$/m);
    assert.match(ok.io.out(), /^Static: +no$/m);
    const missing = await cli(["group", "status", "db", "--servers", servers, "--all-shards"]);
    assert.equal(missing.code, 4);
    assert.match(missing.io.out(), /^Shard: +us-west-2a$/m);
    assert.equal(missing.io.err(), "error: shard us-west-2b: group db not found\n");
  });

  it("group scale changes the size and prints the group; a standby's refusal names the leader", async () => {
    const { code, io } = await cli([
      "group",
      "scale",
      "web",
      "5",
      "--servers",
      servers,
      "--shard",
      "us-west-2a",
    ]);
    assert.equal(code, 0, io.err());
    assert.match(io.out(), /^us-west-2a +web +knc +5 +2 /m);
    assert.equal(s1.groups.get("default/web")?.size, 5);

    s2.notLeaderMessage = "not the shard leader; the leader is s2 at 10.0.1.2:8993";
    try {
      const refused = await cli([
        "group",
        "scale",
        "web",
        "5",
        "--servers",
        servers,
        "--all-shards",
      ]);
      assert.equal(refused.code, 1);
      assert.equal(
        refused.io.err(),
        "error: shard us-west-2b: not the shard leader; the leader is s2 at 10.0.1.2:8993\n",
      );
      assert.equal(s2.groups.get("default/web")?.size, 1, "unchanged on the refusing shard");
    } finally {
      s2.notLeaderMessage = undefined;
    }
  });

  it("group scale of a missing group exits 4", async () => {
    const { code, io } = await cli([
      "group",
      "scale",
      "nope",
      "1",
      "--servers",
      servers,
      "--shard",
      "us-west-2a",
    ]);
    assert.equal(code, 4);
    assert.equal(io.err(), "error: shard us-west-2a: group nope not found\n");
  });

  it("group create sends template, size, type, pool and vars; exists → exit 1", async () => {
    const { code, io } = await cli([
      "group",
      "create",
      "batch",
      "--template",
      "knc",
      "--size",
      "2",
      "--instance-type",
      "c7g.large",
      "--subnet-pool",
      "private",
      "--var",
      "a=1",
      "--var",
      "b=x=y",
      "--servers",
      servers,
      "--shard",
      "us-west-2b",
    ]);
    assert.equal(code, 0, io.err());
    const g = s2.groups.get("default/batch");
    assert.equal(g?.template, "knc");
    assert.equal(g?.size, 2);
    assert.equal(g?.instanceType, "c7g.large");
    assert.equal(g?.subnetPool, "private");
    assert.deepEqual(g?.vars, { a: "1", b: "x=y" });
    assert.match(io.out(), /^us-west-2b +batch +knc +2 +0 +c7g\.large +private +no$/m);

    const again = await cli([
      "group",
      "create",
      "batch",
      "--template",
      "knc",
      "--servers",
      servers,
      "--shard",
      "us-west-2b",
    ]);
    assert.equal(again.code, 1);
    assert.match(again.io.err(), /^error: shard us-west-2b: group batch already exists/);
  });

  it("group delete removes a dynamic group; a static one is refused (exit 1); unknown → exit 4", async () => {
    const ok = await cli([
      "group",
      "delete",
      "batch",
      "--servers",
      servers,
      "--shard",
      "us-west-2b",
    ]);
    assert.equal(ok.code, 0, ok.io.err());
    assert.equal(ok.io.out(), "SHARD       GROUP  RESULT\nus-west-2b  batch  deleted\n");
    const gone = await cli([
      "group",
      "delete",
      "batch",
      "--servers",
      servers,
      "--shard",
      "us-west-2b",
    ]);
    assert.equal(gone.code, 4);
    const statik = await cli([
      "group",
      "delete",
      "web",
      "--servers",
      servers,
      "--shard",
      "us-west-2a",
    ]);
    assert.equal(statik.code, 1);
    assert.match(statik.io.err(), /is defined in the static config/);
  });

  it("config status and refresh print tables; a refused refresh exits 1 with the reason", async () => {
    const status = await cli(["config", "status", "--servers", servers, "--shard", "us-west-2a"]);
    assert.equal(status.code, 0, status.io.err());
    assert.equal(
      status.io.out(),
      "SHARD       ETAG    SIZE  LAST_MODIFIED\nus-west-2a  etag-1  1234  2025-01-02T03:04:05.000Z\n",
    );
    const refresh = await cli(["config", "refresh", "--servers", servers, "--shard", "us-west-2a"]);
    assert.equal(refresh.code, 0, refresh.io.err());
    assert.equal(
      refresh.io.out(),
      "SHARD       UPDATED  PREV_ETAG  ETAG\nus-west-2a  yes      etag-1     etag-2\n",
    );
    s2.refreshError = "config/us-west-2b.jsonc:4:7: groups.default.web.size: must be at least 0";
    try {
      const refused = await cli([
        "config",
        "refresh",
        "--servers",
        servers,
        "--shard",
        "us-west-2b",
        "--json",
      ]);
      assert.equal(refused.code, 1);
      const doc = JSON.parse(refused.io.out()) as {
        results: Array<{ error: { code: string; message: string } }>;
      };
      assert.deepEqual(doc.results[0]!.error, {
        code: "invalid_argument",
        message: "config/us-west-2b.jsonc:4:7: groups.default.web.size: must be at least 0",
      });
    } finally {
      s2.refreshError = undefined;
    }
  });
});
