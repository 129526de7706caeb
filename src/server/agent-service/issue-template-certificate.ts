// SPDX-License-Identifier: Apache-2.0
/**
 * Issues the certificate of a `certificate` file: the config's certificate template (subject, SANs,
 * TTL) rendered with the instance's data, for the public key the agent generated, signed by the
 * cluster CA. EKU follows the template kind: `server` → serverAuth, `client` → clientAuth.
 */
import { isIP } from "node:net";
import type { CertificateConfig } from "../../config/server-config.js";
import { type CertificateAuthority, DEFAULT_NOT_BEFORE_SKEW_MS } from "../../pki/ca.js";
import { newCertificateSerial } from "../../pki/certificate-serial.js";
import { parseEd25519PublicKey, toCryptoKey } from "../../pki/ed25519-keys.js";
import type { IssuedCertificate } from "../../pki/issue-certificate.js";
import { x509 } from "../../pki/x509.js";
import { NstanceError } from "../../shared/errors.js";
import { renderTemplate, type TemplateRoot } from "./render-template.js";

/** Subject attributes without a short name in `@peculiar/x509`: street and postal code. */
const OID_STREET = "2.5.4.9";
const OID_POSTAL_CODE = "2.5.4.17";

/** Options for {@link issueTemplateCertificate}. */
export interface IssueTemplateCertificateOptions {
  ca: CertificateAuthority;
  /** The config's certificate template (`certificates.<name>`), not yet rendered. */
  template: CertificateConfig;
  /** Name of the certificate template, for messages. */
  templateName: string;
  /** Data the template's strings are rendered with. */
  data: TemplateRoot;
  /** The agent's PKIX PEM public key (Ed25519). */
  publicKeyPem: string;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/** A certificate template with every string rendered. */
export type RenderedCertificateTemplate = Omit<CertificateConfig, "kind" | "ttlHours">;

/** Renders every string of a certificate template; empty results are dropped from lists. */
export function renderCertificateTemplate(
  template: CertificateConfig,
  data: TemplateRoot,
  name: string,
): RenderedCertificateTemplate {
  const one = (s: string, field: string) =>
    renderTemplate(s, data, `certificates.${name}.${field}`);
  const many = (list: readonly string[], field: string) =>
    list.map((s, i) => one(s, `${field}[${i}]`)).filter((s) => s !== "");
  return {
    ...(template.cn !== undefined ? { cn: one(template.cn, "cn") } : {}),
    organization: many(template.organization, "organization"),
    dns: many(template.dns, "dns"),
    ip: many(template.ip, "ip"),
    uri: many(template.uri, "uri"),
    country: many(template.country, "country"),
    province: many(template.province, "province"),
    locality: many(template.locality, "locality"),
    street: many(template.street, "street"),
    postalCode: many(template.postalCode, "postal_code"),
  };
}

/**
 * Renders the template and issues the certificate. Throws NstanceError `invalid_argument` when a
 * template string does not render, an `ip` entry is not an IP address, or the key is not Ed25519.
 */
export async function issueTemplateCertificate(
  opts: IssueTemplateCertificateOptions,
): Promise<IssuedCertificate> {
  const r = renderCertificateTemplate(opts.template, opts.data, opts.templateName);
  for (const ip of r.ip) {
    if (isIP(ip) === 0) {
      throw new NstanceError(
        "invalid_argument",
        `certificates.${opts.templateName}.ip: ${JSON.stringify(ip)} is not an IP address`,
      );
    }
  }
  const subject: x509.JsonName = [];
  const add = (type: string, values: readonly string[]) => {
    if (values.length > 0) subject.push({ [type]: [...values] });
  };
  add("C", r.country);
  add("ST", r.province);
  add("L", r.locality);
  add(OID_STREET, r.street);
  add(OID_POSTAL_CODE, r.postalCode);
  add("O", r.organization);
  if (r.cn) add("CN", [r.cn]);

  const names: x509.JsonGeneralName[] = [
    ...r.dns.map((value) => ({ type: "dns" as const, value })),
    ...r.ip.map((value) => ({ type: "ip" as const, value })),
    ...r.uri.map((value) => ({ type: "url" as const, value })),
  ];
  const now = opts.now ?? new Date();
  const publicKey = await toCryptoKey(parseEd25519PublicKey(opts.publicKeyPem));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newCertificateSerial(now),
    subject,
    issuer: opts.ca.cert.subjectName,
    notBefore: new Date(now.getTime() - DEFAULT_NOT_BEFORE_SKEW_MS),
    notAfter: new Date(now.getTime() + opts.template.ttlHours * 3_600_000),
    publicKey,
    signingKey: opts.ca.signingKey,
    signingAlgorithm: { name: "Ed25519" },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        opts.template.kind === "server"
          ? x509.ExtendedKeyUsage.serverAuth
          : x509.ExtendedKeyUsage.clientAuth,
      ]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(opts.ca.cert),
    ],
  });
  return {
    certificatePem: cert.toString("pem"),
    serial: cert.serialNumber.toLowerCase(),
    expiresAt: cert.notAfter,
  };
}
