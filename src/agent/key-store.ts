// SPDX-License-Identifier: Apache-2.0
/**
 * Ed25519 key pairs generated on the machine. Private keys are written to disk and never leave
 * it; callers get the SPKI PEM public key to submit. Key material is never logged.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { DEFAULT_IDENTITY_FILE_MODE, DEFAULT_KEYS_FILE_MODE } from "./agent-config.js";
import { isNodeError, writeFileAtomic } from "./atomic-write.js";
import { checkBaseName } from "./base-name.js";
import { IDENTITY_DIR_MODE, IDENTITY_FILES } from "./identity-dir.js";

/** Mode of the keys directory when the agent creates it. */
export const KEYS_DIR_MODE = 0o750;

/** Options for {@link KeyStore}. */
export interface KeyStoreOptions {
  /** Directory for requested keys (`NSTANCE_KEYS_DIR`). */
  keysDir: string;
  /** Identity directory holding `identity.key` (`NSTANCE_IDENTITY_DIR`). */
  identityDir: string;
  /** Mode of `keys/<name>.key` and `.pub`. Defaults to 0640. */
  keyFileMode?: number;
  /** Mode of `identity/identity.key`. Defaults to 0600. */
  identityFileMode?: number;
  logger: Logger;
}

/** A key pair's public half, ready to submit. */
export interface GeneratedKey {
  /** Key name as requested, e.g. `kubelet.server`. */
  name: string;
  /** PEM-encoded SPKI public key. */
  publicKeyPem: string;
  /** False when an existing private key was reused. */
  created: boolean;
}

/** The agent's own identity key. */
export interface IdentityKey {
  privateKey: KeyObject;
  /** PKCS8 PEM, for the TLS client; never log it. */
  privateKeyPem: string;
  /** SPKI PEM, submitted at registration. */
  publicKeyPem: string;
  /** False when the key already existed. */
  created: boolean;
}

/** Generates and stores Ed25519 keys for the agent. */
export class KeyStore {
  readonly #keysDir: string;
  readonly #identityDir: string;
  readonly #keyFileMode: number;
  readonly #identityFileMode: number;
  readonly #logger: Logger;
  // Serialises generation so two requests for one name cannot race to different keys.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: KeyStoreOptions) {
    if (!opts.keysDir) throw new TypeError("keysDir is required");
    if (!opts.identityDir) throw new TypeError("identityDir is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#keysDir = opts.keysDir;
    this.#identityDir = opts.identityDir;
    this.#keyFileMode = opts.keyFileMode ?? DEFAULT_KEYS_FILE_MODE;
    this.#identityFileMode = opts.identityFileMode ?? DEFAULT_IDENTITY_FILE_MODE;
    this.#logger = opts.logger;
  }

  /** Path of the private key file for `name`. */
  keyPath(name: string): string {
    return join(this.#keysDir, `${name}.key`);
  }

  /**
   * Ensures a key pair named `name` exists: an existing valid `keys/<name>.key` is reused (so a
   * repeated request after a lost submission yields the same public key); otherwise a new pair is
   * generated and written atomically as `<name>.key` (PKCS8) and `<name>.pub` (SPKI).
   */
  ensureKey(name: string): Promise<GeneratedKey> {
    return this.#serial(() => this.#ensureKey(name));
  }

  /** Ensures every named key; stops at the first failure. */
  async ensureKeys(names: readonly string[]): Promise<GeneratedKey[]> {
    const out: GeneratedKey[] = [];
    for (const name of names) out.push(await this.ensureKey(name));
    return out;
  }

  /**
   * Loads `identity/identity.key`, creating it once (mode 0600) when absent. Creation uses a
   * no-clobber link, so two agent processes racing on one directory still end up with one key.
   */
  ensureIdentityKey(): Promise<IdentityKey> {
    return this.#serial(async () => {
      const path = join(this.#identityDir, IDENTITY_FILES.key);
      const existing = await readPrivateKey(path);
      if (existing) return { ...existing, created: false };
      await mkdir(this.#identityDir, { recursive: true, mode: IDENTITY_DIR_MODE });
      const pair = newKeyPair();
      try {
        await writeFileAtomic(path, pair.privateKeyPem, {
          mode: this.#identityFileMode,
          noClobber: true,
        });
      } catch (err) {
        if (!isNodeError(err, "EEXIST")) throw err;
        const winner = await readPrivateKey(path);
        if (!winner) throw new NstanceError("internal", `identity key ${path} is unreadable`);
        return { ...winner, created: false };
      }
      this.#logger.info("Created identity key", { path });
      return { ...pair, created: true };
    });
  }

  async #ensureKey(name: string): Promise<GeneratedKey> {
    const problem = checkBaseName(name);
    if (problem)
      throw new NstanceError(
        "invalid_argument",
        `invalid key name ${JSON.stringify(name)}: ${problem}`,
      );
    const keyPath = this.keyPath(name);
    let existing: Awaited<ReturnType<typeof readPrivateKey>>;
    try {
      existing = await readPrivateKey(keyPath);
    } catch (err) {
      // A damaged key cannot have a certificate worth keeping: replace it.
      this.#logger.warn("Replacing unreadable key", {
        key_name: name,
        path: keyPath,
        err: errorMessage(err),
      });
      existing = undefined;
    }
    if (existing) return { name, publicKeyPem: existing.publicKeyPem, created: false };

    await mkdir(this.#keysDir, { recursive: true, mode: KEYS_DIR_MODE });
    const pair = newKeyPair();
    // Public half first: a crash between the writes leaves no private key without its .pub.
    await writeFileAtomic(join(this.#keysDir, `${name}.pub`), pair.publicKeyPem, {
      mode: this.#keyFileMode,
    });
    await writeFileAtomic(keyPath, pair.privateKeyPem, { mode: this.#keyFileMode });
    this.#logger.info("Generated key pair", { key_name: name, path: keyPath });
    return { name, publicKeyPem: pair.publicKeyPem, created: true };
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }
}

function newKeyPair(): { privateKey: KeyObject; privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKey,
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** Reads a PEM private key; undefined when the file is absent, throws when it does not parse. */
async function readPrivateKey(
  path: string,
): Promise<{ privateKey: KeyObject; privateKeyPem: string; publicKeyPem: string } | undefined> {
  let pem: string;
  try {
    pem = await readFile(path, "utf8");
  } catch (err) {
    if (isNodeError(err, "ENOENT")) return undefined;
    throw err;
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (err) {
    // The parser's message can quote key bytes; keep only the fact.
    throw new NstanceError("internal", `${path} is not a PEM private key`, {
      cause: new Error((err as { code?: string }).code ?? "parse error"),
    });
  }
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new NstanceError(
      "internal",
      `${path} holds a ${privateKey.asymmetricKeyType} key, want ed25519`,
    );
  }
  return {
    privateKey,
    privateKeyPem: pem,
    publicKeyPem: createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString(),
  };
}
