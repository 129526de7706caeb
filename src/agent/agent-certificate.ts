// SPDX-License-Identifier: Apache-2.0
/** Checks on the agent's own client certificate (`identity/identity.crt`). */
import { createPublicKey, X509Certificate } from "node:crypto";

/** What the agent learns from its certificate. */
export interface AgentCertificateInfo {
  /** Subject CN: the instance ID. */
  instanceId: string;
  /** notAfter. */
  expiresAt: Date;
}

/** Reads the CN and expiry of a PEM certificate; throws when it does not parse. */
export function agentCertificateInfo(certPem: string): AgentCertificateInfo {
  const cert = new X509Certificate(certPem);
  const cn = cert.subject
    .split("\n")
    .find((l) => l.startsWith("CN="))
    ?.slice(3);
  return { instanceId: cn ?? "", expiresAt: new Date(cert.validTo) };
}

/**
 * Returns why `certPem` cannot serve as the agent's client certificate, or undefined when it can:
 * it must parse, be issued and signed by one of the CA certificates in `caCertPem`, be within its
 * validity period at `nowMs`, carry a CN, and certify `publicKeyPem` (the identity key).
 */
export function checkAgentCertificate(
  certPem: string,
  caCertPem: string,
  publicKeyPem: string,
  nowMs: number,
): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return "not a PEM certificate";
  }
  const cas = (
    caCertPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  )
    .map((pem) => {
      try {
        return new X509Certificate(pem);
      } catch {
        return undefined;
      }
    })
    .filter((c): c is X509Certificate => c !== undefined);
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    return "not signed by the cluster CA in ca.crt";
  }
  if (Date.parse(cert.validFrom) > nowMs) return `not valid before ${cert.validFrom}`;
  if (Date.parse(cert.validTo) <= nowMs)
    return `expired at ${new Date(cert.validTo).toISOString()}`;
  const spki = (pem: string | X509Certificate["publicKey"]): string =>
    (typeof pem === "string" ? createPublicKey(pem) : pem)
      .export({ type: "spki", format: "der" })
      .toString("base64");
  if (spki(cert.publicKey) !== spki(publicKeyPem)) return "does not match identity.key";
  if (agentCertificateInfo(certPem).instanceId === "") return "has no subject CN";
  return undefined;
}
