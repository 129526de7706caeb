// SPDX-License-Identifier: Apache-2.0
/** Issues server and client certificates signed by the cluster CA. */
import { isIP } from "node:net";
import { type CertificateAuthority, DEFAULT_NOT_BEFORE_SKEW_MS } from "./ca.js";
import { newCertificateSerial } from "./certificate-serial.js";
import { parseEd25519PublicKey, toCryptoKey } from "./ed25519-keys.js";
import { type ClientRole, roleExtension } from "./role-extension.js";
import { x509 } from "./x509.js";

/** Client certificate lifetime when the config sets none (the reference's 24 h). */
export const DEFAULT_CLIENT_CERT_TTL_MS = 24 * 3_600_000;
/** Server certificate lifetime when the caller sets none (one year). */
export const DEFAULT_SERVER_CERT_TTL_MS = 8_760 * 3_600_000;
/**
 * Names every server certificate carries besides the caller's: clients on the same host dial
 * `localhost` or a loopback address, and tooling may dial the fixed name `nstance-server`.
 */
export const DEFAULT_SERVER_CERT_HOSTS = ["localhost", "127.0.0.1", "::1", "nstance-server"];

/** An issued certificate. */
export interface IssuedCertificate {
  /** PEM-encoded certificate. */
  certificatePem: string;
  /** Serial as lowercase hex. */
  serial: string;
  /** The certificate's notAfter. */
  expiresAt: Date;
}

/** Common options for issuing a certificate. */
interface IssueOptionsBase {
  /** The signing CA. */
  ca: CertificateAuthority;
  /** The subject's PKIX (SPKI) PEM public key; must be Ed25519 (else NstanceError invalid_argument). */
  publicKeyPem: string | Buffer;
  /** Lifetime from `now`. */
  ttlMs?: number;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/** Options for {@link issueServerCertificate}. */
export interface IssueServerCertificateOptions extends IssueOptionsBase {
  /**
   * Extra DNS names and IP addresses (told apart automatically), e.g. the advertise host. The
   * {@link DEFAULT_SERVER_CERT_HOSTS} are always added. The first DNS name is the subject CN.
   */
  hosts?: readonly string[];
}

/** Options for {@link issueClientCertificate}. */
export interface IssueClientCertificateOptions extends IssueOptionsBase {
  /** Subject CN: the instance ID (agents) or the operator's client ID. */
  clientId: string;
  /** Subject O, exactly one: the tenant. */
  tenant: string;
  /** Written to the role extension. */
  role: ClientRole;
}

async function issue(
  opts: IssueOptionsBase,
  defaultTtlMs: number,
  subject: x509.JsonName,
  extensions: x509.Extension[],
): Promise<IssuedCertificate> {
  const now = opts.now ?? new Date();
  const publicKey = await toCryptoKey(parseEd25519PublicKey(opts.publicKeyPem));
  const serial = newCertificateSerial(now);
  const expiresAt = new Date(now.getTime() + (opts.ttlMs ?? defaultTtlMs));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: opts.ca.cert.subjectName,
    notBefore: new Date(now.getTime() - DEFAULT_NOT_BEFORE_SKEW_MS),
    notAfter: expiresAt,
    publicKey,
    signingKey: opts.ca.signingKey,
    signingAlgorithm: { name: "Ed25519" },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...extensions,
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(opts.ca.cert),
    ],
  });
  return { certificatePem: cert.toString("pem"), serial, expiresAt: cert.notAfter };
}

/**
 * Issues a TLS server certificate (EKU serverAuth) whose SANs are the given hosts plus
 * {@link DEFAULT_SERVER_CERT_HOSTS}. Clients verify the dialled host against these SANs.
 */
export function issueServerCertificate(
  opts: IssueServerCertificateOptions,
): Promise<IssuedCertificate> {
  const hosts = [...new Set([...(opts.hosts ?? []), ...DEFAULT_SERVER_CERT_HOSTS])];
  const names: x509.JsonGeneralName[] = hosts.map((h) =>
    isIP(h) ? { type: "ip", value: h } : { type: "dns", value: h },
  );
  const commonName = hosts.find((h) => !isIP(h)) ?? "nstance-server";
  return issue(
    opts,
    DEFAULT_SERVER_CERT_TTL_MS,
    [{ CN: [commonName] }],
    [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  );
}

/**
 * Issues a client certificate (EKU clientAuth): CN = client ID, O = tenant, and the role
 * extension. {@link parseClientIdentity} reads these back.
 */
export function issueClientCertificate(
  opts: IssueClientCertificateOptions,
): Promise<IssuedCertificate> {
  if (!opts.clientId) throw new TypeError("clientId is required");
  if (!opts.tenant) throw new TypeError("tenant is required");
  return issue(
    opts,
    DEFAULT_CLIENT_CERT_TTL_MS,
    [{ CN: [opts.clientId] }, { O: [opts.tenant] }],
    [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      roleExtension(opts.role),
    ],
  );
}
