// SPDX-License-Identifier: Apache-2.0
/**
 * The certificate `nstance-admin serve` uses when no `--tls-cert` is given: self-signed, made at
 * start for the local host names, and never written to disk. It is ECDSA P-256 rather than the
 * cluster's Ed25519 because browsers do not accept Ed25519 server certificates. Operators check
 * it by the SHA-256 fingerprint printed at start.
 */

import { createPrivateKey, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { DEFAULT_NOT_BEFORE_SKEW_MS } from "../../pki/ca.js";
import { newCertificateSerial } from "../../pki/certificate-serial.js";
import { x509 } from "../../pki/x509.js";

/** Names every self-signed admin certificate carries. */
export const DEFAULT_SELF_SIGNED_HOSTS = ["localhost", "127.0.0.1", "::1"] as const;
/** Lifetime of a self-signed certificate: it is made again at every start. */
export const DEFAULT_SELF_SIGNED_TTL_MS = 30 * 24 * 3_600_000;

/** A certificate and its key as PEM, with the certificate's fingerprint. */
export interface SelfSignedCertificate {
  certPem: string;
  /** PKCS#8 PEM; stays in memory. */
  keyPem: string;
  /** SHA-256 of the DER certificate as colon-separated hex (`AB:CD:…`), as browsers show it. */
  fingerprint256: string;
  /** The names in its subjectAltName. */
  hosts: string[];
}

/** Makes a self-signed serverAuth certificate for {@link DEFAULT_SELF_SIGNED_HOSTS} and `hosts`. */
export async function createSelfSignedCertificate(
  hosts: readonly string[] = [],
  now: Date = new Date(),
): Promise<SelfSignedCertificate> {
  const names = [...new Set([...DEFAULT_SELF_SIGNED_HOSTS, ...hosts])];
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newCertificateSerial(now),
    name: [{ CN: ["nstance-admin"] }],
    notBefore: new Date(now.getTime() - DEFAULT_NOT_BEFORE_SKEW_MS),
    notAfter: new Date(now.getTime() + DEFAULT_SELF_SIGNED_TTL_MS),
    keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((h) => (isIP(h) ? { type: "ip", value: h } : { type: "dns", value: h })),
      ),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const certPem = cert.toString("pem");
  return {
    certPem,
    keyPem: createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })
      .export({ type: "pkcs8", format: "pem" })
      .toString(),
    fingerprint256: new X509Certificate(certPem).fingerprint256,
    hosts: names,
  };
}
