// SPDX-License-Identifier: Apache-2.0
/** Reads who a client is from its (already verified) client certificate. */
import { X509Certificate } from "node:crypto";
import { NstanceError } from "../shared/errors.js";
import {
  children,
  contents,
  DER_TAG,
  DerError,
  expectTag,
  oidText,
  readElement,
  stringValue,
  timeValue,
} from "./der-reader.js";
import {
  type ClientRole,
  decodeRoleValue,
  isClientRole,
  ROLE_EXTENSION_OID,
} from "./role-extension.js";

/** The identity a client certificate carries. */
export interface ClientIdentity {
  /** Subject CN: instance ID for agents, client ID for operators. */
  clientId: string;
  /** The single subject O. */
  tenant: string;
  /** From the role extension. */
  role: ClientRole;
  /** Serial as lowercase hex. */
  serial: string;
  /** The certificate's notAfter. */
  notAfter: Date;
}

function unauthenticated(message: string, cause?: unknown): NstanceError {
  return new NstanceError("unauthenticated", `client certificate ${message}`, { cause });
}

const OID_CN = "2.5.4.3";
const OID_O = "2.5.4.10";

/** The fields of a certificate that an identity is read from. */
interface CertificateFields {
  serial: string;
  notAfter: Date;
  cn: string[];
  o: string[];
  /** Values (extnValue contents) of the extensions with the role OID. */
  roles: Buffer[];
}

/** Walks the TBSCertificate (RFC 5280 4.1) for the fields {@link parseClientIdentity} needs. */
function readCertificateFields(der: Uint8Array): CertificateFields {
  const cert = expectTag(readElement(der, 0), DER_TAG.sequence, "certificate");
  const tbs = children(expectTag(children(cert)[0], DER_TAG.sequence, "tbsCertificate"));
  // version [0] EXPLICIT is optional; then serial, signature, issuer, validity, subject, spki.
  let i = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const serial = contents(expectTag(tbs[i++], DER_TAG.integer, "serialNumber"));
  i += 2; // signature algorithm, issuer
  const validity = children(expectTag(tbs[i++], DER_TAG.sequence, "validity"));
  if (validity.length !== 2) throw new DerError("validity must hold two times");
  const subject = expectTag(tbs[i++], DER_TAG.sequence, "subject");
  const fields: CertificateFields = {
    // A positive INTEGER whose first byte has the high bit set carries a 0x00 pad; the serial
    // as issued (and as @peculiar/x509 reads it) is without it.
    serial: (serial.length > 1 && serial[0] === 0 && serial[1]! >= 0x80
      ? serial.subarray(1)
      : serial
    ).toString("hex"),
    notAfter: timeValue(validity[1]!),
    cn: [],
    o: [],
    roles: [],
  };
  for (const rdn of children(subject)) {
    for (const atv of children(expectTag(rdn, DER_TAG.set, "relative distinguished name"))) {
      const [type, value] = children(expectTag(atv, DER_TAG.sequence, "attribute"));
      if (!type || !value) throw new DerError("attribute without a type and value");
      const oid = oidText(type);
      if (oid !== OID_CN && oid !== OID_O) continue;
      const text = stringValue(value);
      if (text === undefined) throw new DerError(`attribute ${oid} is not a string`);
      (oid === OID_CN ? fields.cn : fields.o).push(text);
    }
  }
  const extensions = tbs.slice(i).find((e) => e.tag === 0xa3);
  if (extensions) {
    const list = children(extensions);
    for (const ext of children(expectTag(list[0], DER_TAG.sequence, "extensions"))) {
      const parts = children(expectTag(ext, DER_TAG.sequence, "extension"));
      if (oidText(parts[0]!) !== ROLE_EXTENSION_OID) continue;
      fields.roles.push(contents(expectTag(parts.at(-1), DER_TAG.octetString, "extnValue")));
    }
  }
  return fields;
}

/**
 * Parses a client certificate (PEM, or DER as returned by `peerCertificate(call)`). It does not
 * verify the chain: TLS did that before the call reached a handler. Throws NstanceError
 * `unauthenticated` when the CN is empty, the subject has no or several O (tenant), or the role
 * extension is missing, malformed or names an unknown role.
 */
export function parseClientIdentity(cert: string | Uint8Array): ClientIdentity {
  let parsed: CertificateFields;
  try {
    parsed = readCertificateFields(typeof cert === "string" ? new X509Certificate(cert).raw : cert);
  } catch (err) {
    throw unauthenticated("cannot be parsed", err);
  }
  const clientId = parsed.cn[0] ?? "";
  if (clientId === "") throw unauthenticated("has no subject CN (client ID)");
  const orgs = parsed.o;
  if (orgs.length !== 1 || orgs[0] === "") {
    throw unauthenticated(
      `must carry exactly one subject O (tenant), found ${orgs.filter((o) => o !== "").length}`,
    );
  }
  if (parsed.roles.length !== 1) {
    throw unauthenticated(`must carry exactly one role extension (${ROLE_EXTENSION_OID})`);
  }
  const role = decodeRoleValue(parsed.roles[0]!);
  if (!isClientRole(role)) {
    throw unauthenticated(
      role === undefined ? "has a malformed role extension" : `has unknown role "${role}"`,
    );
  }
  return { clientId, tenant: orgs[0]!, role, serial: parsed.serial, notAfter: parsed.notAfter };
}
