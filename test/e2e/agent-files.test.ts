// SPDX-License-Identifier: Apache-2.0
// Issue 5 "Done when", end to end: a real nstance-server process whose `local` provider runs real
// nstance-agent processes. Each agent registers, is asked for a key, submits only its public
// half, receives a certificate for it signed by the cluster CA, receives secret, storage, env,
// json and string files with exact contents, reports them back, and its config_hash converges to
// the group's runtime hash. A vars change then reaches every running agent in place (same
// instances), and a patch with an invalid file is rejected whole and reported.
import assert from "node:assert/strict";
import { createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { JSONPath } from "jsonc-parser";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import { FLEET_WAIT_MS, type FleetInstance, LocalFleet } from "./local-fleet.js";

/** Report interval of the agents (NSTANCE_METRICS_INTERVAL). */
const INTERVAL_MS = 2_000;
const GROUP = "web";
const SIZE = 2;
const SETTINGS_KEY = "shard/local/files/settings.json";

/** Template files beyond examples/local.jsonc's web.crt, web.env and instance.json. */
const FILE_EDITS: Array<[JSONPath, unknown]> = [
  [["templates", "web", "files", "api-token"], { kind: "secret", source: "api-token" }],
  [
    ["templates", "web", "files", "settings.json"],
    { kind: "storage", source: "files/settings.json" },
  ],
  [
    ["templates", "web", "files", "banner.txt"],
    {
      kind: "string",
      template: "{{ .Instance.ID }} ({{ .Vars.environment }}) listens on {{ .Vars.listen_port }}\n",
    },
  ],
];

/** Every file an agent of the group should end up with (the template's and the CA). */
const FILES = [
  "api-token",
  "banner.txt",
  "ca.crt",
  "instance.json",
  "settings.json",
  "web.crt",
  "web.env",
];

describe("agents end to end: keys, certificates and files from a real server", {
  concurrency: false,
}, () => {
  let fleet: LocalFleet;
  let edits: Array<[JSONPath, unknown]> = [];
  const secret = randomBytes(48); // binary on purpose: delivered byte for byte
  const settings = Buffer.from('{\n  "feature_x": true,\n  "limit": 3\n}\n');
  let ids: string[] = [];

  const recv = (id: string, name: string) => join(fleet.instanceDir(id), "recv", name);
  const readRecv = (id: string, name: string) => readFile(recv(id, name));
  const putObject = async (key: string, body: Buffer | string) => {
    const path = join(fleet.bucket, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  };
  /** Applies more config edits to the bucket's config and makes the server reload it. */
  const changeConfig = async (more: Array<[JSONPath, unknown]>) => {
    edits = [...edits, ...more];
    await writeShardConfig(fleet.bucket, await shardConfigText([...STEADY_ELECTION, ...edits]));
    const r = await fleet.shardAdmin("config", "refresh");
    assert.equal(r.code, 0, r.err);
  };
  const live = (): FleetInstance[] => fleet.instances().filter((i) => i.groupKey === GROUP);

  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-e2e-files-"));
    edits = [...FILE_EDITS, [["groups", "default", GROUP, "size"], 0]];
    fleet = await LocalFleet.start({
      dir,
      edits,
      agentEnv: { NSTANCE_METRICS_INTERVAL: `${INTERVAL_MS / 1000}s` },
    });
    // The secret and the storage object exist before the first instance asks for them.
    const secretFile = join(dir, "api-token.bin");
    await writeFile(secretFile, secret, { mode: 0o600 });
    const put = await fleet.shardAdmin("secret", "put", "api-token", "--value-file", secretFile);
    assert.equal(put.code, 0, put.err);
    await putObject(SETTINGS_KEY, settings);
    const scale = await fleet.shardAdmin("group", "scale", GROUP, String(SIZE));
    assert.equal(scale.code, 0, scale.err);
  });
  after(async () => {
    await fleet?.stop();
  });

  it("registers, generates the requested key, gets a CA-signed certificate for it, receives exact files and converges", async (t) => {
    const runtimeHash = fleet.runtimeHash(GROUP);
    assert.match(runtimeHash ?? "", /^sha256:[0-9a-f]{64}$/);
    await waitFor(
      `${SIZE} agents reporting every file with the runtime hash`,
      () => {
        const insts = live();
        return (
          insts.length === SIZE &&
          insts.every(
            (i) =>
              i.health?.config_hash === runtimeHash &&
              FILES.every((f) => {
                const v = (i.health?.files as Record<string, string> | undefined)?.[f];
                return typeof v === "string" && v !== "" && !v.startsWith("error:");
              }),
          )
        );
      },
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    ids = live().map((i) => i.id);
    const caPem = await readFile(join(fleet.bucket, "cluster", "ca.crt"), "utf8");
    const ca = new X509Certificate(caPem);

    for (const inst of live()) {
      const id = inst.id;
      assert.ok(inst.registeredAt, `${id} registered`);
      const log = await fleet.agentLog(id);
      const said = (msg: string) => log.find((l) => l.msg === msg);
      // The nonce was spent and deleted; the key request came from the server.
      assert.ok(said("Registered"), `${id} registered itself`);
      assert.ok(said("Deleted registration nonce"));
      assert.deepEqual(said("Key generation requested")?.keys, ["web"]);
      assert.deepEqual(said("Submitted public keys")?.keys, ["web.pub"]);

      // The certificate: signed by the cluster CA, for the agent's own key, for this instance.
      const certPem = await readRecv(id, "web.crt");
      const cert = new X509Certificate(certPem);
      assert.ok(cert.checkIssued(ca), "issued by the cluster CA");
      assert.ok(cert.verify(ca.publicKey), "signature verifies with the CA key");
      const keyPem = await readFile(join(fleet.instanceDir(id), "keys", "web.key"), "utf8");
      assert.deepEqual(
        cert.publicKey.export({ type: "spki", format: "der" }),
        createPublicKey(keyPem).export({ type: "spki", format: "der" }),
        "the certificate is for the key the agent generated",
      );
      assert.match(cert.subject, new RegExp(`CN=${id}\\.local`));
      assert.match(cert.subjectAltName ?? "", new RegExp(`DNS:${id}\\.local`));
      assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
      // Only the public half left the machine.
      const stored = fleet.db
        .prepare("SELECT public_key_pem FROM public_keys WHERE instance_id = ? AND filename = ?")
        .get(id, "web.pub") as { public_key_pem: string } | undefined;
      assert.equal(
        stored?.public_key_pem,
        await readFile(join(fleet.instanceDir(id), "keys", "web.pub"), "utf8"),
      );
      assert.doesNotMatch(JSON.stringify(fleet.server.proc.logs), /PRIVATE KEY/);

      // Every other file, byte for byte.
      assert.deepEqual(await readRecv(id, "api-token"), secret);
      assert.deepEqual(await readRecv(id, "settings.json"), settings);
      assert.equal(
        (await readRecv(id, "web.env")).toString(),
        "ENVIRONMENT=development\nPORT=8080\n",
      );
      assert.equal(
        (await readRecv(id, "instance.json")).toString(),
        `${JSON.stringify({ id, cluster: "local" }, null, 2)}\n`,
      );
      assert.equal(
        (await readRecv(id, "banner.txt")).toString(),
        `${id} (development) listens on 8080\n`,
      );
      assert.equal((await readRecv(id, "ca.crt")).toString(), caPem);

      // Reported back: each file's mtime (to the second) in the stored report, restrictive modes.
      const files = inst.health?.files as Record<string, string>;
      assert.deepEqual(Object.keys(files).sort(), FILES);
      for (const f of FILES) {
        const st = await stat(recv(id, f));
        assert.equal(st.mode & 0o007, 0, `${f} is not world-accessible`);
        assert.ok(
          Math.abs(Date.parse(files[f]!) - st.mtimeMs) < 1_000,
          `${f}: reported ${files[f]}, mtime ${st.mtime.toISOString()}`,
        );
      }
    }
    t.diagnostic(`instances ${ids.join(", ")} converged to ${runtimeHash}`);
  });

  it("a vars change updates the files on every running agent within two report intervals, in place", async (t) => {
    const oldHash = fleet.runtimeHash(GROUP);
    const decisionsBefore = ids.map((id) => fleet.decisions(id).length);
    const startedAt = Date.now();
    await changeConfig([[["templates", "web", "vars", "listen_port"], "9090"]]);
    const newHash = fleet.runtimeHash(GROUP);
    assert.notEqual(newHash, oldHash, "vars are part of the runtime hash");

    const updatedAt = new Map<string, number>();
    await waitFor(
      "every agent's web.env and banner.txt to carry the new port",
      async () => {
        for (const id of ids) {
          if (updatedAt.has(id)) continue;
          const env = (await readRecv(id, "web.env")).toString();
          const banner = (await readRecv(id, "banner.txt")).toString();
          if (env.includes("PORT=9090") && banner.includes("on 9090")) {
            updatedAt.set(id, Date.now());
          }
        }
        return updatedAt.size === ids.length;
      },
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    const slowestMs = Math.max(...updatedAt.values()) - startedAt;
    t.diagnostic(
      `vars change reached ${ids.length} agents in ${[...updatedAt.values()].map((at) => at - startedAt).join(", ")} ms (interval ${INTERVAL_MS} ms)`,
    );
    // Two report intervals is the design bound; ×5 headroom for a loaded CI machine.
    assert.ok(slowestMs < 2 * INTERVAL_MS * 5, `slowest agent took ${slowestMs} ms`);
    for (const id of ids) {
      assert.equal(
        (await readRecv(id, "web.env")).toString(),
        "ENVIRONMENT=development\nPORT=9090\n",
      );
      assert.equal(
        (await readRecv(id, "banner.txt")).toString(),
        `${id} (development) listens on 9090\n`,
      );
    }

    await waitFor(
      "every agent to report the new config hash",
      () => live().every((i) => i.health?.config_hash === newHash),
      FLEET_WAIT_MS,
    );
    // Fixed in place: the same instances, no replacement decided, the same certificate key.
    assert.deepEqual(
      live().map((i) => i.id),
      ids,
    );
    ids.forEach((id, n) => {
      const since = fleet.decisions(id).slice(decisionsBefore[n]);
      assert.ok(
        since.every((d) => !/replace|drain|delete|unhealthy|vanished/.test(d.decision)),
        `${id}: ${JSON.stringify(since)}`,
      );
    });
    const delivered = fleet.server.proc.logs.filter(
      (l) => l.msg === "Files delivered" && l.config_hash === newHash,
    );
    assert.deepEqual(
      [...new Set(delivered.map((l) => l.instance_id))].sort(),
      [...ids].sort(),
      "each agent got the new set",
    );
    assert.ok(
      delivered.every((l) => l.mode === "whole"),
      "drift pushes the whole set",
    );
  });

  it("a patch with an invalid file is rejected whole and reported; the old files stay", async () => {
    const appliedHash = fleet.runtimeHash(GROUP);
    await putObject(SETTINGS_KEY, "{ not json");
    await changeConfig([[["templates", "web", "vars", "listen_port"], "9191"]]);
    const targetHash = fleet.runtimeHash(GROUP);
    assert.notEqual(targetHash, appliedHash);

    await waitFor(
      "every agent to report the rejected patch",
      () =>
        live().every((i) => {
          const files = i.health?.files as Record<string, string> | undefined;
          return (
            typeof i.health?.patch_error === "string" &&
            files?.["settings.json"]?.startsWith("error:") === true
          );
        }),
      FLEET_WAIT_MS,
    ).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await fleet.recent()}`);
    });
    for (const inst of live()) {
      const id = inst.id;
      assert.match(String(inst.health?.patch_error), /settings\.json/);
      // Nothing of the patch was applied: not even the valid files, nor the hash.
      assert.equal(inst.health?.config_hash, appliedHash);
      assert.equal(
        (await readRecv(id, "web.env")).toString(),
        "ENVIRONMENT=development\nPORT=9090\n",
      );
      assert.deepEqual(await readRecv(id, "settings.json"), settings);
      const rejected = (await fleet.agentLog(id)).find((l) => l.msg === "Rejected file patch");
      assert.deepEqual(rejected?.invalid, ["settings.json"]);
    }
    assert.deepEqual(
      live().map((i) => i.id),
      ids,
      "a bad patch replaces no instance",
    );
  });
});
