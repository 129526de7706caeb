// SPDX-License-Identifier: Apache-2.0
/**
 * The agent's identity directory: `ca.crt` and `nonce.jwt` (written by userdata before the agent
 * starts), `identity.key` (see KeyStore), `identity.crt` (issued at registration) and
 * `config.hash` (the runtime config hash the agent's files match).
 */
import { X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { DEFAULT_IDENTITY_FILE_MODE } from "./agent-config.js";
import { isNodeError, removeIfExists, writeFileAtomic } from "./atomic-write.js";

/** Mode of the identity directory itself: only the agent's user may list or enter it. */
export const IDENTITY_DIR_MODE = 0o700;

/** File names inside the identity directory. */
export const IDENTITY_FILES = {
  caCert: "ca.crt",
  nonce: "nonce.jwt",
  key: "identity.key",
  certificate: "identity.crt",
  configHash: "config.hash",
} as const;

/** Options for {@link IdentityDir}. */
export interface IdentityDirOptions {
  /** Absolute path of the directory (`NSTANCE_IDENTITY_DIR`). */
  dir: string;
  /** Mode of files written here. Defaults to 0600. */
  fileMode?: number;
  logger: Logger;
}

/** What {@link IdentityDir.load} found. */
export interface LoadedIdentity {
  /** The cluster CA certificate(s), PEM. */
  caCertPem: string;
  /** The registration nonce JWT; undefined once the agent has registered. */
  nonce: string | undefined;
  /** The agent's client certificate, PEM; undefined before registration. */
  certificatePem: string | undefined;
}

/** Reads and writes the files of the agent's identity directory. */
export class IdentityDir {
  readonly #dir: string;
  readonly #fileMode: number;
  readonly #logger: Logger;

  constructor(opts: IdentityDirOptions) {
    if (!opts.dir) throw new TypeError("dir is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#dir = opts.dir;
    this.#fileMode = opts.fileMode ?? DEFAULT_IDENTITY_FILE_MODE;
    this.#logger = opts.logger;
  }

  /** The directory path. */
  get dir(): string {
    return this.#dir;
  }

  /** Path of `ca.crt`. */
  get caCertPath(): string {
    return join(this.#dir, IDENTITY_FILES.caCert);
  }

  /** Path of `nonce.jwt`. */
  get noncePath(): string {
    return join(this.#dir, IDENTITY_FILES.nonce);
  }

  /** Path of `identity.key`. */
  get keyPath(): string {
    return join(this.#dir, IDENTITY_FILES.key);
  }

  /** Path of `identity.crt`. */
  get certificatePath(): string {
    return join(this.#dir, IDENTITY_FILES.certificate);
  }

  /** Path of `config.hash`. */
  get configHashPath(): string {
    return join(this.#dir, IDENTITY_FILES.configHash);
  }

  /**
   * Creates the directory (mode 0700) when missing. An existing directory keeps its mode, but a
   * world-accessible one is tightened, since it holds the agent's private key.
   */
  async ensure(): Promise<void> {
    const created = await mkdir(this.#dir, { recursive: true, mode: IDENTITY_DIR_MODE }).catch(
      (err: unknown) => {
        // EEXIST from a recursive mkdir means a non-directory is in the way; reported below.
        if (isNodeError(err, "EEXIST")) return undefined;
        throw err;
      },
    );
    if (created !== undefined) {
      await chmod(this.#dir, IDENTITY_DIR_MODE);
      return;
    }
    const st = await stat(this.#dir);
    if (!st.isDirectory()) {
      throw new NstanceError(
        "precondition_failed",
        `identity path ${this.#dir} is not a directory`,
      );
    }
    if ((st.mode & 0o007) !== 0) {
      this.#logger.warn("Identity directory was accessible to all users; restricting it", {
        path: this.#dir,
        mode: (st.mode & 0o777).toString(8),
      });
      await chmod(this.#dir, st.mode & 0o770);
    }
  }

  /**
   * Reads what the agent needs to start: the CA certificate (required) and either the nonce (not
   * yet registered) or the certificate (registered). Throws an error naming the missing path.
   */
  async load(): Promise<LoadedIdentity> {
    const caCertPem = await this.readCaCert();
    const certificatePem = await this.readCertificate();
    const nonce = await this.readNonce();
    if (nonce === undefined && certificatePem === undefined) {
      throw new NstanceError(
        "precondition_failed",
        `registration nonce ${this.noncePath} is missing and there is no certificate at ${this.certificatePath}: ` +
          "the instance's userdata should have written nonce.jwt before starting the agent",
      );
    }
    return { caCertPem, nonce, certificatePem };
  }

  /** Reads `ca.crt`; throws when it is missing, empty or not a PEM certificate. */
  async readCaCert(): Promise<string> {
    const pem = await this.#read(IDENTITY_FILES.caCert);
    if (pem === undefined || pem.trim() === "") {
      throw new NstanceError(
        "precondition_failed",
        `cluster CA certificate ${this.caCertPath} is ${pem === undefined ? "missing" : "empty"}: ` +
          "the instance's userdata should have written it",
      );
    }
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
    try {
      if (!blocks) throw new Error("no PEM CERTIFICATE block");
      for (const b of blocks) new X509Certificate(b);
    } catch (err) {
      throw new NstanceError(
        "precondition_failed",
        `cluster CA certificate ${this.caCertPath} is not a valid PEM certificate`,
        { cause: err },
      );
    }
    return pem;
  }

  /** Reads `nonce.jwt` (trimmed); undefined when absent. Throws when it is not a JWT. */
  async readNonce(): Promise<string | undefined> {
    const text = await this.#read(IDENTITY_FILES.nonce);
    if (text === undefined) return undefined;
    const jwt = text.trim();
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(jwt)) {
      throw new NstanceError(
        "precondition_failed",
        `registration nonce ${this.noncePath} is not a JWT (want header.payload.signature)`,
      );
    }
    return jwt;
  }

  /** Deletes `nonce.jwt` after a successful registration; idempotent. */
  async deleteNonce(): Promise<void> {
    if (await removeIfExists(this.noncePath)) {
      this.#logger.info("Deleted registration nonce", { path: this.noncePath });
    }
  }

  /** Reads `identity.crt`; undefined before registration. */
  async readCertificate(): Promise<string | undefined> {
    const pem = await this.#read(IDENTITY_FILES.certificate);
    return pem?.trim() === "" ? undefined : pem;
  }

  /** Stores the client certificate from registration, atomically; rejects anything but PEM certificates. */
  async writeCertificate(pem: string): Promise<void> {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new NstanceError("invalid_argument", "registration returned an invalid certificate", {
        cause: err,
      });
    }
    await writeFileAtomic(this.certificatePath, pem, { mode: this.#fileMode });
  }

  /** Reads `config.hash` (trimmed); undefined when absent or empty. */
  async readConfigHash(): Promise<string | undefined> {
    const text = (await this.#read(IDENTITY_FILES.configHash))?.trim();
    return text === "" ? undefined : text;
  }

  /** Writes `config.hash` atomically. */
  async writeConfigHash(hash: string): Promise<void> {
    // Reads trim the file: a hash with surrounding spaces would read back as another hash.
    if (hash.trim() === "" || hash.trim() !== hash || /[\r\n]/.test(hash)) {
      throw new NstanceError(
        "invalid_argument",
        "config hash must be one non-empty line without surrounding spaces",
      );
    }
    await writeFileAtomic(this.configHashPath, hash, { mode: this.#fileMode });
  }

  async #read(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.#dir, name), "utf8");
    } catch (err) {
      if (isNodeError(err, "ENOENT")) return undefined;
      throw new NstanceError(
        "unavailable",
        `cannot read ${join(this.#dir, name)}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  }
}
