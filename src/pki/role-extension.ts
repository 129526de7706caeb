// SPDX-License-Identifier: Apache-2.0
/**
 * The client-role certificate extension: OID 1.3.6.1.4.1.999999.1, non-critical, whose value is a
 * DER string naming the role. The value is a single primitive string, so it is encoded here
 * rather than through a general ASN.1 library; decoding is strict about tag and length.
 */
import { x509 } from "./x509.js";

/** OID of the role extension. */
export const ROLE_EXTENSION_OID = "1.3.6.1.4.1.999999.1";

/** Roles a client certificate can carry. */
export const CLIENT_ROLES = ["agent", "operator"] as const;
/** One of {@link CLIENT_ROLES}. */
export type ClientRole = (typeof CLIENT_ROLES)[number];

const TAG_UTF8_STRING = 0x0c;
// Go's asn1.Marshal writes a plain ASCII string as PrintableString; accept it too.
const TAG_PRINTABLE_STRING = 0x13;

/** Builds the non-critical role extension with the role as an ASN.1 UTF8String. */
export function roleExtension(role: ClientRole): x509.Extension {
  const text = Buffer.from(role, "utf8");
  // Roles are short ASCII words: short-form length (< 128) always applies.
  const der = Buffer.concat([Buffer.from([TAG_UTF8_STRING, text.length]), text]);
  return new x509.Extension(ROLE_EXTENSION_OID, false, der);
}

/**
 * Decodes the role extension's value (a DER UTF8String or PrintableString). Returns `undefined`
 * for any other encoding; the caller decides whether the text is a known role.
 */
export function decodeRoleValue(value: ArrayBuffer | Uint8Array): string | undefined {
  const der = Buffer.from(value instanceof Uint8Array ? value : new Uint8Array(value));
  if (der.length < 2) return undefined;
  const tag = der[0];
  if (tag !== TAG_UTF8_STRING && tag !== TAG_PRINTABLE_STRING) return undefined;
  let length = der[1]!;
  let offset = 2;
  if (length & 0x80) {
    const lengthBytes = length & 0x7f;
    if (lengthBytes === 0 || lengthBytes > 2 || der.length < 2 + lengthBytes) return undefined;
    length = der.readUIntBE(2, lengthBytes);
    offset += lengthBytes;
  }
  if (offset + length !== der.length) return undefined;
  return der.subarray(offset).toString("utf8");
}

/** Narrows a string to a {@link ClientRole}. */
export function isClientRole(text: string | undefined): text is ClientRole {
  return (CLIENT_ROLES as readonly string[]).includes(text ?? "");
}
