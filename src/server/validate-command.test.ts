// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createStorage } from "../storage/create-storage.js";
import { runValidate } from "./validate-command.js";

const EXAMPLE = new URL("../../examples/local.jsonc", import.meta.url).pathname;
const BROKEN = new URL("../../test/fixtures/config/unknown-template-wbe.jsonc", import.meta.url)
  .pathname;

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) }, out, err };
}

const fileCmd = (path: string) => ({
  kind: "validate-file" as const,
  path,
  logLevel: "info" as const,
  logFormat: "json" as const,
});

describe("validate mode", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("a valid local file: exit 0 and a ✓ line", async () => {
    const c = capture();
    assert.equal(await runValidate(fileCmd(EXAMPLE), {}, c.io), 0);
    assert.match(c.out.join(""), /^✓ .*local\.jsonc is valid\n$/);
  });

  it("a broken local file: exit 1, file:line:column and JSON path", async () => {
    const c = capture();
    assert.equal(await runValidate(fileCmd(BROKEN), {}, c.io), 1);
    assert.match(
      c.err.join(""),
      /✗ .*unknown-template-wbe\.jsonc:\d+:\d+: groups\.default\.web\.template: unknown template "wbe"/,
    );
  });

  it("a missing file says so", async () => {
    const c = capture();
    assert.equal(await runValidate(fileCmd("/nonexistent/x.jsonc"), {}, c.io), 1);
    assert.match(c.err.join(""), /cannot read file/);
  });

  it("bare --validate fetches config and groups from storage", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-validate-"));
    dirs.push(dir);
    const storage = await createStorage({ kind: "file", bucket: dir });
    const cmd = {
      kind: "validate-remote" as const,
      shard: "local",
      storage: "file" as const,
      bucket: dir,
      prefix: "shard/local/",
      logLevel: "info" as const,
      logFormat: "json" as const,
    };
    let c = capture();
    assert.equal(await runValidate(cmd, {}, c.io), 1);
    assert.match(c.err.join(""), /config\/local\.jsonc: does not exist/);

    await storage.put("config/local.jsonc", await readFile(EXAMPLE));
    c = capture();
    assert.equal(await runValidate(cmd, {}, c.io), 0);
    assert.match(c.out.join(""), /✓ .*config\/local\.jsonc and .*groups\/local\.jsonc is valid/);

    // A dynamic group that tries to change a restricted field of a static group.
    await storage.put(
      "groups/local.jsonc",
      JSON.stringify({ default: { web: { template: "other" } } }),
    );
    c = capture();
    assert.equal(await runValidate(cmd, {}, c.io), 1);
    assert.match(c.err.join(""), /groups\.default\.web\.template/);
  });
});
