// SPDX-License-Identifier: Apache-2.0
/**
 * The operator identity directory (`--identity-dir`, default `./identity`): `ca.crt` (the cluster
 * CA, the only trusted root), `identity.key` (the operator's Ed25519 private key) and
 * `identity.crt` (its client certificate, role `operator`). Files are 0600, the directory 0700.
 */
import { randomBytes, X509Certificate } from "node:crypto";
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ClientIdentity, parseClientIdentity } from "../../pki/client-identity.js";
import { parseEd25519PrivateKey } from "../../pki/ed25519-keys.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";

/** Default identity directory, relative to the working directory. */
export const DEFAULT_IDENTITY_DIR = "./identity";
/** File names inside the identity directory. */
export const IDENTITY_FILES = {
  caCert: "ca.crt",
  key: "identity.key",
  certificate: "identity.crt",
} as const;
/** Mode of every identity file: the key is a secret, and the rest is kept alike. */
export const IDENTITY_FILE_MODE = 0o600;
/** Mode of the identity directory. */
export const IDENTITY_DIR_MODE = 0o700;

/** The PEM material of an operator identity. */
export interface OperatorIdentityPem {
  /** Cluster CA certificate. */
  caCertPem: string;
  /** PKCS#8 Ed25519 private key. */
  keyPem: string;
  /** Client certificate. */
  certPem: string;
}

/** A loaded, checked operator identity. */
export interface OperatorIdentity extends OperatorIdentityPem {
  /** What the certificate says: client ID, tenant, role, serial, notAfter. */
  client: ClientIdentity;
}

function invalid(message: string, cause?: unknown): NstanceError {
  return new NstanceError("invalid_argument", message, { cause });
}

async function readIdentityFile(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw invalid(
        `identity dir ${dir} has no ${name}; register first with ` +
          `"nstance-admin cluster register-operator" or pass --identity-dir`,
        err,
      );
    }
    throw invalid(`cannot read ${path}: ${errorMessage(err)}`, err);
  }
}

/**
 * Loads and checks the identity in `dir`: the certificate must carry the `operator` role, match
 * the private key, and not have expired at `now`. Throws NstanceError `invalid_argument` with a
 * message that names the file and the fix.
 */
export async function loadOperatorIdentity(
  dir: string,
  now: Date = new Date(),
): Promise<OperatorIdentity> {
  // One file after the other, so a missing directory is always reported as its ca.crt.
  const caCertPem = await readIdentityFile(dir, IDENTITY_FILES.caCert);
  const keyPem = await readIdentityFile(dir, IDENTITY_FILES.key);
  const certPem = await readIdentityFile(dir, IDENTITY_FILES.certificate);
  const certPath = join(dir, IDENTITY_FILES.certificate);
  let client: ClientIdentity;
  let cert: X509Certificate;
  try {
    client = parseClientIdentity(certPem);
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw invalid(`${certPath} is not an nstance client certificate: ${errorMessage(err)}`, err);
  }
  if (client.role !== "operator") {
    throw invalid(`${certPath} has role "${client.role}", not "operator"`);
  }
  let key: ReturnType<typeof parseEd25519PrivateKey>;
  try {
    key = parseEd25519PrivateKey(keyPem);
  } catch (err) {
    throw invalid(`${join(dir, IDENTITY_FILES.key)}: ${errorMessage(err)}`, err);
  }
  if (!cert.checkPrivateKey(key)) {
    throw invalid(`${certPath} does not belong to ${join(dir, IDENTITY_FILES.key)}`);
  }
  if (client.notAfter.getTime() <= now.getTime()) {
    throw invalid(
      `${certPath} expired at ${client.notAfter.toISOString()}; register the operator again`,
    );
  }
  return { caCertPem, keyPem, certPem, client };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Writes `data` to `path` with mode 0600 through a temporary file and a rename. */
async function writeFileReplacing(path: string, data: string): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, data, { mode: IDENTITY_FILE_MODE, flag: "wx" });
    await chmod(tmp, IDENTITY_FILE_MODE);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Creates `dir` (0700) when missing and, unless `replace` is set, refuses with NstanceError
 * `already_exists` when it already holds a key or a certificate. Registration calls this before
 * it spends a nonce, so an existing operator key is never overwritten by accident.
 */
export async function prepareIdentityDir(
  dir: string,
  opts: { replace?: boolean } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: IDENTITY_DIR_MODE });
  if (opts.replace) return;
  for (const name of [IDENTITY_FILES.key, IDENTITY_FILES.certificate]) {
    if (await exists(join(dir, name))) {
      throw new NstanceError(
        "already_exists",
        `${join(dir, name)} already exists; pass --force to replace the identity in ${dir}`,
      );
    }
  }
}

/**
 * Writes an identity into `dir` (created 0700 when missing): `ca.crt`, `identity.key`, then
 * `identity.crt`, each 0600 and replaced atomically. Checks the directory first as
 * {@link prepareIdentityDir} does.
 */
export async function writeOperatorIdentity(
  dir: string,
  identity: OperatorIdentityPem,
  opts: { replace?: boolean } = {},
): Promise<void> {
  await prepareIdentityDir(dir, opts);
  await writeFileReplacing(join(dir, IDENTITY_FILES.caCert), identity.caCertPem);
  await writeFileReplacing(join(dir, IDENTITY_FILES.key), identity.keyPem);
  await writeFileReplacing(join(dir, IDENTITY_FILES.certificate), identity.certPem);
}
