// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import { silentLogger } from "../shared/logger.js";
import { IdentityDir } from "./identity-dir.js";

const CERT = `-----BEGIN CERTIFICATE-----
MIIBRDCB96ADAgECAhQFI3AQebZWKQXEV9BQ53eCT0NFSzAFBgMrZXAwFzEVMBMG
A1UEAwwMbnN0YW5jZS10ZXN0MCAXDTI2MTEyMzA5MzU0OFoYDzIxMjYxMDMwMDkz
NTQ4WjAXMRUwEwYDVQQDDAxuc3RhbmNlLXRlc3QwKjAFBgMrZXADIQDbEuNNc2mA
z9ejbNmYC5zM6B4H3JYeTER/3NNfxGvyJaNTMFEwHQYDVR0OBBYEFGDOwrgNnLe9
wlEbm6MR2Stb76dVMB8GA1UdIwQYMBaAFGDOwrgNnLe9wlEbm6MR2Stb76dVMA8G
A1UdEwEB/wQFMAMBAf8wBQYDK2VwA0EAMd3gSqaIWrB34NTAyaF6JReY2Jx2nQ/t
3C2FhmY+TPTZeiWob7wgOXd9kW7NnpY19QYxcS5M2nQai9gqbFb9Dw==
-----END CERTIFICATE-----
`;
const JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJrbmMwIn0.c2lnbmF0dXJl";

describe("IdentityDir", () => {
  let root = "";
  let dir = "";
  let id: IdentityDir;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "nstance-identity-"));
    dir = join(root, "opt", "identity");
    id = new IdentityDir({ dir, logger: silentLogger });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("creates the directory with mode 0700 and tightens a world-readable one", async () => {
    await id.ensure();
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    await chmod(dir, 0o755);
    await id.ensure();
    assert.equal((await stat(dir)).mode & 0o777, 0o750);
    await id.ensure();
  });

  it("refuses a file where the directory should be", async () => {
    await mkdir(join(root, "opt"), { recursive: true });
    await writeFile(dir, "");
    await assert.rejects(id.ensure(), /is not a directory/);
  });

  it("explains a missing ca.crt: which path, and that userdata writes it", async () => {
    await id.ensure();
    await assert.rejects(id.load(), (err: unknown) => {
      assert.ok(err instanceof NstanceError);
      assert.equal(err.code, "precondition_failed");
      assert.equal(
        err.message,
        `cluster CA certificate ${join(dir, "ca.crt")} is missing: the instance's userdata should have written it`,
      );
      return true;
    });
    await writeFile(join(dir, "ca.crt"), "  \n");
    await assert.rejects(id.readCaCert(), /ca\.crt is empty/);
    await writeFile(join(dir, "ca.crt"), "hello");
    await assert.rejects(id.readCaCert(), /ca\.crt is not a valid PEM certificate/);
  });

  it("explains a missing nonce before registration", async () => {
    await id.ensure();
    await writeFile(join(dir, "ca.crt"), CERT);
    await assert.rejects(
      id.load(),
      new RegExp(
        `registration nonce ${join(dir, "nonce.jwt")} is missing .*userdata should have written nonce.jwt`,
      ),
    );
    await writeFile(join(dir, "nonce.jwt"), "not-a-jwt");
    await assert.rejects(id.load(), /is not a JWT/);
  });

  it("walks through registration: nonce → certificate, nonce deleted", async () => {
    await id.ensure();
    await writeFile(join(dir, "ca.crt"), CERT);
    await writeFile(join(dir, "nonce.jwt"), `${JWT}\n`);
    assert.deepEqual(await id.load(), { caCertPem: CERT, nonce: JWT, certificatePem: undefined });

    await assert.rejects(id.writeCertificate("nope"), /invalid certificate/);
    await id.writeCertificate(CERT);
    assert.equal((await stat(id.certificatePath)).mode & 0o777, 0o600);
    await id.deleteNonce();
    await id.deleteNonce();
    assert.deepEqual(await id.load(), { caCertPem: CERT, nonce: undefined, certificatePem: CERT });
  });

  it("reads and writes config.hash", async () => {
    await id.ensure();
    assert.equal(await id.readConfigHash(), undefined);
    await id.writeConfigHash("sha256:abc");
    assert.equal(await id.readConfigHash(), "sha256:abc");
    assert.equal((await stat(id.configHashPath)).mode & 0o777, 0o600);
    await assert.rejects(id.writeConfigHash("a\nb"), /one non-empty line/);
    await assert.rejects(id.writeConfigHash(""), /one non-empty line/);
    const custom = new IdentityDir({ dir, fileMode: 0o640, logger: silentLogger });
    await custom.writeConfigHash("sha256:def");
    assert.equal((await stat(id.configHashPath)).mode & 0o777, 0o640);
  });
});
