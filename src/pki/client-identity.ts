// SPDX-License-Identifier: Apache-2.0
/** Reads who a client is from its (already verified) client certificate. */
import { NstanceError } from "../shared/errors.js";
import {
  type ClientRole,
  decodeRoleValue,
  isClientRole,
  ROLE_EXTENSION_OID,
} from "./role-extension.js";
import { x509 } from "./x509.js";

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

/**
 * Parses a client certificate (PEM, or DER as returned by `peerCertificate(call)`). It does not
 * verify the chain: TLS did that before the call reached a handler. Throws NstanceError
 * `unauthenticated` when the CN is empty, the subject has no or several O (tenant), or the role
 * extension is missing, malformed or names an unknown role.
 */
export function parseClientIdentity(cert: string | Uint8Array): ClientIdentity {
  let parsed: x509.X509Certificate;
  try {
    parsed = new x509.X509Certificate(typeof cert === "string" ? cert : new Uint8Array(cert));
  } catch (err) {
    throw unauthenticated("cannot be parsed", err);
  }
  const clientId = parsed.subjectName.getField("CN")[0] ?? "";
  if (clientId === "") throw unauthenticated("has no subject CN (client ID)");
  const orgs = parsed.subjectName.getField("O");
  if (orgs.length !== 1 || orgs[0] === "") {
    throw unauthenticated(
      `must carry exactly one subject O (tenant), found ${orgs.filter((o) => o !== "").length}`,
    );
  }
  const roleExts = parsed.extensions.filter((e) => e.type === ROLE_EXTENSION_OID);
  if (roleExts.length !== 1) {
    throw unauthenticated(`must carry exactly one role extension (${ROLE_EXTENSION_OID})`);
  }
  const role = decodeRoleValue(roleExts[0]!.value);
  if (!isClientRole(role)) {
    throw unauthenticated(
      role === undefined ? "has a malformed role extension" : `has unknown role "${role}"`,
    );
  }
  return {
    clientId,
    tenant: orgs[0]!,
    role,
    serial: parsed.serialNumber.toLowerCase(),
    notAfter: parsed.notAfter,
  };
}
