// SPDX-License-Identifier: Apache-2.0
/**
 * Read-only access to the cluster objects the admin's cluster commands use: the CA certificate and
 * key and the registration-nonce signing key. Unlike the server's `ensureClusterIdentity`, nothing
 * here creates a missing object: a missing one means the wrong bucket or a cluster that never ran.
 */
import type { KeyObject } from "node:crypto";
import { type CertificateAuthority, loadCertificateAuthority } from "../../pki/ca.js";
import {
  CA_CERT_OBJECT,
  CA_KEY_OBJECT,
  DEFAULT_CLUSTER_PREFIX,
  NONCE_KEY_OBJECT,
} from "../../pki/cluster-identity.js";
import { parseEd25519PrivateKey } from "../../pki/ed25519-keys.js";
import { SecretBox } from "../../pki/secret-box.js";
import { x509 } from "../../pki/x509.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { ObjectStorage } from "../../storage/object-storage.js";

/** Where the cluster objects are and how to open the encrypted ones. */
export interface ClusterStorage {
  /** The bucket (not scoped to a shard). */
  storage: ObjectStorage;
  /** The 32-byte secrets key; `undefined` when the secrets are stored in plaintext. */
  encryptionKey: Buffer | undefined;
  /** Defaults to {@link DEFAULT_CLUSTER_PREFIX}. */
  prefix?: string;
}

/** Subject O prefix of the CA certificate; the cluster ID follows it. */
const CA_ORG_PREFIX = "Nstance Cluster ";
const PEM_PREFIX = Buffer.from("-----BEGIN ");

function keyOf(cs: Pick<ClusterStorage, "prefix">, object: string): string {
  return (cs.prefix ?? DEFAULT_CLUSTER_PREFIX) + object;
}

async function readObject(
  storage: ObjectStorage,
  key: string,
  signal?: AbortSignal,
): Promise<Buffer> {
  const obj = await storage.get(key, signal);
  if (!obj) {
    throw new NstanceError(
      "not_found",
      `${key} not found in ${storage.description}: is this the cluster's bucket, and has a server started with it?`,
    );
  }
  return obj.body;
}

/** Reads a secret object and returns its PEM text, decrypting it when it is encrypted. */
export async function readClusterSecret(
  cs: ClusterStorage,
  object: string,
  signal?: AbortSignal,
): Promise<string> {
  const key = keyOf(cs, object);
  const blob = await readObject(cs.storage, key, signal);
  // Plaintext secrets are PEM; a random GCM nonce starts with "-----BEGIN " with p = 2^-88.
  if (blob.subarray(0, PEM_PREFIX.length).equals(PEM_PREFIX)) return blob.toString("utf8");
  if (!cs.encryptionKey) {
    throw new NstanceError(
      "invalid_argument",
      `${key} is encrypted but no encryption key was given (--encryption-key-env or --encryption-key-file)`,
    );
  }
  try {
    return new SecretBox({ key: cs.encryptionKey }).decrypt(blob).toString("utf8");
  } catch (err) {
    throw new NstanceError(
      "invalid_argument",
      `cannot decrypt ${key} with the given encryption key (is it this cluster's key?)`,
      { cause: err },
    );
  }
}

/** Reads the CA certificate PEM (public; no key needed). */
export async function readClusterCaCert(
  cs: Pick<ClusterStorage, "storage" | "prefix">,
  signal?: AbortSignal,
): Promise<string> {
  return (await readObject(cs.storage, keyOf(cs, CA_CERT_OBJECT), signal)).toString("utf8");
}

/** Loads the CA (certificate and decrypted key), ready to issue certificates. */
export async function loadClusterCa(
  cs: ClusterStorage,
  signal?: AbortSignal,
): Promise<CertificateAuthority> {
  const [certPem, keyPem] = await Promise.all([
    readClusterCaCert(cs, signal),
    readClusterSecret(cs, CA_KEY_OBJECT, signal),
  ]);
  try {
    return await loadCertificateAuthority({ certPem, keyPem });
  } catch (err) {
    throw new NstanceError(
      "precondition_failed",
      `${keyOf(cs, CA_CERT_OBJECT)} and ${keyOf(cs, CA_KEY_OBJECT)} do not form a CA: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

/** Loads the registration-nonce signing key. */
export async function loadNonceSigningKey(
  cs: ClusterStorage,
  signal?: AbortSignal,
): Promise<KeyObject> {
  const pem = await readClusterSecret(cs, NONCE_KEY_OBJECT, signal);
  try {
    return parseEd25519PrivateKey(pem);
  } catch (err) {
    throw new NstanceError(
      "precondition_failed",
      `${keyOf(cs, NONCE_KEY_OBJECT)} is not an Ed25519 private key: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}

/** The cluster ID written into a CA certificate's subject O, or `undefined` when absent. */
export function caClusterId(caCertPem: string): string | undefined {
  const org = new x509.X509Certificate(caCertPem).subjectName
    .getField("O")
    .find((o) => o.startsWith(CA_ORG_PREFIX));
  return org?.slice(CA_ORG_PREFIX.length);
}
