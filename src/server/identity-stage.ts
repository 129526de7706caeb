// SPDX-License-Identifier: Apache-2.0
/**
 * Boot stage: the cluster identity (CA and nonce signing key, created once per cluster) and this
 * server's TLS certificate, issued fresh at every boot from the cluster CA. The server's private key
 * never leaves memory.
 */
import type { ServerConfig } from "../config/server-config.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../pki/cluster-identity.js";
import { generateEd25519KeyPair } from "../pki/ed25519-keys.js";
import { issueServerCertificate } from "../pki/issue-certificate.js";
import { loadEncryptionKey } from "../pki/secret-box.js";
import type { Logger } from "../shared/logger.js";
import type { ObjectStorage } from "../storage/object-storage.js";

/** TLS material for this server's listeners. */
export interface ServerTls {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

/** What the identity stage produces. */
export interface ServerIdentity {
  identity: ClusterIdentity;
  tls: ServerTls;
  /** The cluster secrets key (for the secrets store), when configured. */
  encryptionKey: Buffer | undefined;
}

/**
 * Loads the encryption key named by the config. A missing variable or a key of the wrong length
 * throws NstanceError invalid_argument: the server refuses to start rather than run without it.
 */
export async function loadClusterEncryptionKey(
  config: ServerConfig,
  env: Readonly<Record<string, string | undefined>>,
): Promise<Buffer | undefined> {
  const source = config.cluster.secrets.encryptionKey;
  return source ? loadEncryptionKey(source, env) : undefined;
}

/** Loads or creates the cluster identity and issues this server's certificate. */
export async function loadServerIdentity(
  opts: {
    config: ServerConfig;
    storage: ObjectStorage;
    encryptionKey: Buffer | undefined;
    /** Host names and IPs to put in the certificate (advertise hosts). */
    hosts: readonly string[];
    logger: Logger;
  },
  signal?: AbortSignal,
): Promise<ServerIdentity> {
  const identity = await ensureClusterIdentity(
    {
      storage: opts.storage,
      clusterId: opts.config.cluster.id,
      encryptionKey: opts.encryptionKey,
      logger: opts.logger,
    },
    signal,
  );
  const keys = generateEd25519KeyPair();
  const cert = await issueServerCertificate({
    ca: identity.ca,
    publicKeyPem: keys.publicKeyPem,
    hosts: opts.hosts,
  });
  opts.logger.info("Server certificate issued", {
    serial: cert.serial,
    expires_at: cert.expiresAt.toISOString(),
  });
  return {
    identity,
    encryptionKey: opts.encryptionKey,
    tls: {
      caCertPem: identity.ca.certPem,
      certPem: cert.certificatePem,
      keyPem: keys.privateKeyPem,
    },
  };
}
