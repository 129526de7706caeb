// SPDX-License-Identifier: Apache-2.0
/**
 * The cluster's long-lived identity in object storage: the CA (`cluster/ca.crt`,
 * `cluster/secret/ca.key`) and the registration-nonce signing key
 * (`cluster/secret/registration-nonce.key`). The first server to boot creates them with
 * create-only writes; every other server, and every restart, reads the same bytes back.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { errorMessage, NstanceError, PreconditionFailedError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { ObjectStorage } from "../storage/object-storage.js";
import {
  type CertificateAuthority,
  createCertificateAuthority,
  loadCertificateAuthority,
} from "./ca.js";
import { generateEd25519KeyPair, parseEd25519PrivateKey } from "./ed25519-keys.js";
import { SecretBox } from "./secret-box.js";

/** Where cluster-scoped objects live in the bucket. */
export const DEFAULT_CLUSTER_PREFIX = "cluster/";
/** CA certificate object, relative to the cluster prefix. */
export const CA_CERT_OBJECT = "ca.crt";
/** CA private key object, relative to the cluster prefix. */
export const CA_KEY_OBJECT = "secret/ca.key";
/** Nonce signing key object, relative to the cluster prefix. */
export const NONCE_KEY_OBJECT = "secret/registration-nonce.key";
/**
 * How long to wait for `ca.crt` when `ca.key` exists without it: another server may be between
 * its two create-only writes. After this the state is reported as inconsistent.
 */
export const DEFAULT_CA_SETTLE_TIMEOUT_MS = 15_000;
const SETTLE_POLL_MS = 100;

/** Options for {@link ensureClusterIdentity}. */
export interface EnsureClusterIdentityOptions {
  /** The bucket (not scoped to a shard). */
  storage: ObjectStorage;
  /** Cluster ID, written into the CA subject on creation. */
  clusterId: string;
  /**
   * 32-byte key that encrypts the secret objects. `undefined` stores them in plaintext (the
   * reference's behaviour without a key), with a warning.
   */
  encryptionKey: Buffer | undefined;
  /** Older keys that still decrypt (key rotation). */
  decryptOnlyKeys?: readonly Buffer[];
  /** Defaults to {@link DEFAULT_CLUSTER_PREFIX}. */
  prefix?: string;
  /** Defaults to {@link DEFAULT_CA_SETTLE_TIMEOUT_MS}. */
  caSettleTimeoutMs?: number;
  logger: Logger;
}

/** The cluster identity every server loads at boot. */
export interface ClusterIdentity {
  clusterId: string;
  /** The CA, ready to issue certificates; `ca.certPem` is the stored bytes clients trust. */
  ca: CertificateAuthority;
  /** Signs registration nonce JWTs. */
  nonceSigningKey: KeyObject;
  /** Verifies registration nonce JWTs. */
  nonceVerifyKey: KeyObject;
}

const PEM_PREFIX = Buffer.from("-----BEGIN ");

/** Encodes and decodes secret objects: encrypted under a key, or PEM plaintext without one. */
class SecretCodec {
  readonly #box: SecretBox | undefined;
  constructor(key: Buffer | undefined, oldKeys: readonly Buffer[] | undefined) {
    this.#box = key ? new SecretBox({ key, decryptOnlyKeys: oldKeys }) : undefined;
  }
  encode(pem: string): Buffer {
    return this.#box ? this.#box.encrypt(pem) : Buffer.from(pem);
  }
  decode(key: string, blob: Buffer): string {
    // A random GCM nonce starts with "-----BEGIN " with probability 2^-88: this is plaintext.
    if (blob.subarray(0, PEM_PREFIX.length).equals(PEM_PREFIX)) return blob.toString("utf8");
    if (!this.#box) {
      throw new NstanceError(
        "invalid_argument",
        `${key} is encrypted but no encryption key is configured`,
      );
    }
    try {
      return this.#box.decrypt(blob).toString("utf8");
    } catch (err) {
      throw new NstanceError("internal", `cannot decrypt ${key}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
}

function inconsistent(message: string): NstanceError {
  return new NstanceError("precondition_failed", `inconsistent CA state: ${message}`);
}

/** Writes `body` only if `key` does not exist; false when another writer got there first. */
async function createOnly(storage: ObjectStorage, key: string, body: Buffer, signal?: AbortSignal) {
  try {
    await storage.put(key, body, { condition: { ifNoneMatch: "*" }, signal });
    return true;
  } catch (err) {
    if (err instanceof PreconditionFailedError) return false;
    throw err;
  }
}

async function ensureCa(
  opts: EnsureClusterIdentityOptions,
  codec: SecretCodec,
  signal?: AbortSignal,
): Promise<CertificateAuthority> {
  const prefix = opts.prefix ?? DEFAULT_CLUSTER_PREFIX;
  const certKey = prefix + CA_CERT_OBJECT;
  const keyKey = prefix + CA_KEY_OBJECT;
  const settleBy = Date.now() + (opts.caSettleTimeoutMs ?? DEFAULT_CA_SETTLE_TIMEOUT_MS);
  for (;;) {
    const [cert, key] = await Promise.all([
      opts.storage.get(certKey, signal),
      opts.storage.get(keyKey, signal),
    ]);
    if (cert && key) {
      try {
        return await loadCertificateAuthority({
          certPem: cert.body.toString("utf8"),
          keyPem: codec.decode(keyKey, key.body),
        });
      } catch (err) {
        if (err instanceof NstanceError && err.code === "invalid_argument") {
          throw inconsistent(`${certKey} and ${keyKey} do not form a CA: ${err.message}`);
        }
        throw err;
      }
    }
    if (cert && !key) {
      throw inconsistent(
        `${certKey} exists but ${keyKey} is missing; restore ${keyKey} from a backup ` +
          `(deleting ${certKey} instead creates a new CA and invalidates every certificate)`,
      );
    }
    if (key && !cert) {
      // The key is always written first, so another server may be about to write the cert.
      if (Date.now() >= settleBy) {
        throw inconsistent(
          `${keyKey} exists but ${certKey} is missing (a server likely stopped while creating ` +
            `the CA); no certificate can have been trusted, so delete ${keyKey} to start over`,
        );
      }
      await sleep(SETTLE_POLL_MS, signal);
      continue;
    }
    const created = await createCertificateAuthority({ clusterId: opts.clusterId });
    if (!(await createOnly(opts.storage, keyKey, codec.encode(created.keyPem), signal))) {
      opts.logger.info("Another server is creating the cluster CA; using theirs");
      continue;
    }
    if (!(await createOnly(opts.storage, certKey, Buffer.from(created.certPem), signal))) {
      continue; // Cannot happen unless someone wrote ca.crt by hand; the next read decides.
    }
    opts.logger.info("Created the cluster CA", { cluster_id: opts.clusterId, key: certKey });
  }
}

async function ensureNonceKey(
  opts: EnsureClusterIdentityOptions,
  codec: SecretCodec,
  signal?: AbortSignal,
): Promise<KeyObject> {
  const key = (opts.prefix ?? DEFAULT_CLUSTER_PREFIX) + NONCE_KEY_OBJECT;
  for (;;) {
    const stored = await opts.storage.get(key, signal);
    if (stored) return parseEd25519PrivateKey(codec.decode(key, stored.body));
    const { privateKeyPem } = generateEd25519KeyPair();
    if (await createOnly(opts.storage, key, codec.encode(privateKeyPem), signal)) {
      opts.logger.info("Created the registration nonce signing key", { key });
    }
  }
}

/**
 * Loads the cluster identity, creating the CA and the nonce signing key on first boot. Safe to
 * call from many servers at once: create-only writes make exactly one creator win and everyone
 * returns the winner's objects. Throws NstanceError `precondition_failed` ("inconsistent CA
 * state") when only one of `ca.crt` / `ca.key` exists, or they do not match.
 */
export async function ensureClusterIdentity(
  opts: EnsureClusterIdentityOptions,
  signal?: AbortSignal,
): Promise<ClusterIdentity> {
  if (!opts.clusterId) throw new TypeError("clusterId is required");
  if (!opts.encryptionKey) {
    opts.logger.warn("No encryption key configured: cluster secrets are stored unencrypted");
  }
  const codec = new SecretCodec(opts.encryptionKey, opts.decryptOnlyKeys);
  const [ca, nonceSigningKey] = await Promise.all([
    ensureCa(opts, codec, signal),
    ensureNonceKey(opts, codec, signal),
  ]);
  return {
    clusterId: opts.clusterId,
    ca,
    nonceSigningKey,
    nonceVerifyKey: createPublicKey(nonceSigningKey),
  };
}
