// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildNoCloudIso } from "./nocloud-iso.js";

const USER_DATA = `#!/bin/sh\necho "hello from nstance"\n${"x".repeat(5000)}\n`;
const META_DATA =
  "instance-id: tst06h0fwhz5xsfbdnv6xkyxfmk58\nlocal-hostname: tst06h0fwhz5xsfbdnv6xkyxfmk58\n";

function has(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Reads a root directory (primary or Joliet) the way ECMA-119 lays it out. */
function readRoot(iso: Buffer, descriptorSector: number, joliet: boolean): Map<string, Buffer> {
  const vd = iso.subarray(descriptorSector * 2048);
  const rootExtent = vd.readUInt32LE(156 + 2);
  const rootSize = vd.readUInt32LE(156 + 10);
  const out = new Map<string, Buffer>();
  let pos = rootExtent * 2048;
  const end = pos + rootSize;
  while (pos < end && iso[pos]! > 0) {
    const len = iso[pos]!;
    const extent = iso.readUInt32LE(pos + 2);
    const size = iso.readUInt32LE(pos + 10);
    const idLen = iso[pos + 32]!;
    const idBytes = iso.subarray(pos + 33, pos + 33 + idLen);
    if (idLen > 1 || idBytes[0]! > 1) {
      const name = joliet
        ? Buffer.from(idBytes).swap16().toString("utf16le")
        : idBytes.toString("ascii");
      out.set(name, iso.subarray(extent * 2048, extent * 2048 + size));
    }
    pos += len;
  }
  return out;
}

describe("buildNoCloudIso", () => {
  const iso = buildNoCloudIso({
    userData: USER_DATA,
    metaData: META_DATA,
    now: new Date(Date.UTC(2026, 0, 2)),
  });
  let dir: string;
  let file: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-iso-"));
    file = join(dir, "cidata.iso");
    await writeFile(file, iso);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("has ISO 9660 descriptors: primary, Joliet, terminator, label cidata", () => {
    assert.equal(iso.length % 2048, 0);
    const pvd = iso.subarray(16 * 2048);
    assert.equal(pvd[0], 1);
    assert.equal(pvd.subarray(1, 6).toString("ascii"), "CD001");
    assert.equal(pvd.subarray(40, 72).toString("ascii").trim(), "cidata");
    assert.equal(pvd.readUInt32LE(80) * 2048, iso.length);
    const svd = iso.subarray(17 * 2048);
    assert.equal(svd[0], 2);
    assert.equal(svd.subarray(88, 91).toString("ascii"), "%/E");
    assert.equal(iso[18 * 2048], 255);
  });

  it("holds user-data and meta-data in both directory trees", () => {
    const primary = readRoot(iso, 16, false);
    assert.deepEqual([...primary.keys()], ["META-DATA.;1", "USER-DATA.;1"]);
    assert.equal(primary.get("USER-DATA.;1")!.toString("utf8"), USER_DATA);
    const joliet = readRoot(iso, 17, true);
    assert.deepEqual([...joliet.keys()], ["meta-data", "user-data"]);
    assert.equal(joliet.get("meta-data")!.toString("utf8"), META_DATA);
    assert.equal(joliet.get("user-data")!.toString("utf8"), USER_DATA);
  });

  it("is recognised by blkid as iso9660 labelled cidata", {
    skip: !has("blkid") && "blkid not installed",
  }, () => {
    const out = execFileSync("blkid", ["-p", "-o", "export", file], { encoding: "utf8" });
    assert.match(out, /^TYPE=iso9660$/m);
    assert.match(out, /^LABEL=cidata$/m);
  });

  it("extracts with libarchive (bsdtar) to the exact file names", {
    skip: !has("bsdtar") && "bsdtar (libarchive-tools) not installed",
  }, async () => {
    const out = join(dir, "x");
    execFileSync("mkdir", ["-p", out]);
    execFileSync("bsdtar", ["-xf", file, "-C", out]);
    assert.equal(await readFile(join(out, "user-data"), "utf8"), USER_DATA);
    assert.equal(await readFile(join(out, "meta-data"), "utf8"), META_DATA);
  });
});
