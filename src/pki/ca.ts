// SPDX-License-Identifier: Apache-2.0
/** The cluster's certificate authority: a self-signed Ed25519 CA that signs every certificate. */
import type { KeyObject, webcrypto } from "node:crypto";
import { NstanceError } from "../shared/errors.js";
import { newCertificateSerial } from "./certificate-serial.js";
import {
  generateEd25519KeyPair,
  parseEd25519PrivateKey,
  parseEd25519PublicKey,
  spkiDer,
  toCryptoKey,
} from "./ed25519-keys.js";
import { x509 } from "./x509.js";

/** CA lifetime: 87600 h (10 years), as in the reference. */
export const DEFAULT_CA_TTL_MS = 87_600 * 3_600_000;
/** Subject CN of the CA certificate. */
export const CA_COMMON_NAME = "Nstance CA";
/**
 * How far notBefore is set in the past, so that hosts whose clocks run a little behind accept a
 * certificate the moment it is issued.
 */
export const DEFAULT_NOT_BEFORE_SKEW_MS = 5 * 60_000;

/** A loaded CA, ready to sign. */
export interface CertificateAuthority {
  /** The CA certificate PEM exactly as stored (clients trust these bytes). */
  certPem: string;
  /** The parsed CA certificate. */
  cert: x509.X509Certificate;
  /** The CA private key (Ed25519). */
  privateKey: KeyObject;
  /** The same key as a WebCrypto key, for `@peculiar/x509`. */
  signingKey: webcrypto.CryptoKey;
}

/** PEM material of a new CA. */
export interface CertificateAuthorityPem {
  certPem: string;
  /** PKCS#8 PEM private key: a secret, store it encrypted. */
  keyPem: string;
}

/** Options for {@link createCertificateAuthority}. */
export interface CreateCertificateAuthorityOptions {
  /** Cluster ID; the subject O is `Nstance Cluster <clusterId>`. */
  clusterId: string;
  /** Lifetime. Defaults to {@link DEFAULT_CA_TTL_MS}. */
  ttlMs?: number;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/**
 * Creates a self-signed Ed25519 CA: CN `Nstance CA`, O `Nstance Cluster <id>`, basicConstraints
 * CA with pathLen 1 (critical), keyUsage keyCertSign + cRLSign + digitalSignature (critical).
 */
export async function createCertificateAuthority(
  opts: CreateCertificateAuthorityOptions,
): Promise<CertificateAuthorityPem> {
  if (!opts.clusterId) throw new TypeError("clusterId is required");
  const now = opts.now ?? new Date();
  const { privateKeyPem, publicKeyPem } = generateEd25519KeyPair();
  const privateKey = await toCryptoKey(parseEd25519PrivateKey(privateKeyPem));
  const publicKey = await toCryptoKey(parseEd25519PublicKey(publicKeyPem));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newCertificateSerial(now),
    name: [{ CN: [CA_COMMON_NAME] }, { O: [`Nstance Cluster ${opts.clusterId}`] }],
    notBefore: new Date(now.getTime() - DEFAULT_NOT_BEFORE_SKEW_MS),
    notAfter: new Date(now.getTime() + (opts.ttlMs ?? DEFAULT_CA_TTL_MS)),
    keys: { privateKey, publicKey },
    signingAlgorithm: { name: "Ed25519" },
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign |
          x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: privateKeyPem };
}

/**
 * Loads a CA from its certificate PEM and PKCS#8 key PEM. Throws NstanceError `invalid_argument`
 * when the certificate is not an Ed25519 CA certificate or the key does not belong to it.
 */
export async function loadCertificateAuthority(
  pem: CertificateAuthorityPem,
): Promise<CertificateAuthority> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem.certPem);
  } catch (err) {
    throw new NstanceError("invalid_argument", "CA certificate is not a valid PEM certificate", {
      cause: err,
    });
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca !== true) {
    throw new NstanceError("invalid_argument", "CA certificate is not marked as a CA");
  }
  const certKey = parseEd25519PublicKey(cert.publicKey.toString("pem"));
  const privateKey = parseEd25519PrivateKey(pem.keyPem);
  if (!spkiDer(privateKey).equals(spkiDer(certKey))) {
    throw new NstanceError("invalid_argument", "CA private key does not match the CA certificate");
  }
  return { certPem: pem.certPem, cert, privateKey, signingKey: await toCryptoKey(privateKey) };
}
