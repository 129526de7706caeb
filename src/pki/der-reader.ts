// SPDX-License-Identifier: Apache-2.0
/**
 * A minimal, strict DER reader: just enough to walk an X.509 certificate's TBSCertificate for the
 * fields a client identity needs (client-identity.ts). The general ASN.1 library behind
 * `@peculiar/x509` costs milliseconds per certificate, which is minutes of CPU when ten thousand
 * agents reconnect to a new leader; this reads the same fields in microseconds. It only reads
 * certificates whose chain TLS has already verified, and throws on anything malformed.
 */

/** One DER element: its tag byte and the bounds of its contents within `buf`. */
export interface DerElement {
  tag: number;
  buf: Uint8Array;
  start: number;
  end: number;
}

/** Tag bytes used when walking certificates. */
export const DER_TAG = {
  boolean: 0x01,
  integer: 0x02,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  teletexString: 0x14,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  universalString: 0x1c,
  bmpString: 0x1e,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Thrown for malformed DER. */
export class DerError extends Error {
  override name = "DerError";
}

/** Reads the element starting at `offset` (which must lie within `[offset, limit)`). */
export function readElement(buf: Uint8Array, offset: number, limit = buf.length): DerElement {
  if (offset + 2 > limit) throw new DerError(`truncated element at byte ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(`multi-byte tag at byte ${offset}`);
  let length = buf[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    if (n === 0 || n > 4) throw new DerError(`unsupported length form at byte ${offset}`);
    if (start + n > limit) throw new DerError(`truncated length at byte ${offset}`);
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + length;
  if (end > limit) throw new DerError(`element at byte ${offset} runs past its container`);
  return { tag, buf, start, end };
}

/** The elements directly inside a constructed element, in order. */
export function children(parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const e = readElement(parent.buf, at, parent.end);
    out.push(e);
    at = e.end;
  }
  return out;
}

/** Checks an element's tag; returns it for chaining. */
export function expectTag(e: DerElement | undefined, tag: number, what: string): DerElement {
  if (!e || e.tag !== tag) {
    throw new DerError(
      `${what}: expected tag 0x${tag.toString(16)}, found ${e ? `0x${e.tag.toString(16)}` : "nothing"}`,
    );
  }
  return e;
}

/** The contents of an element as a Buffer view (no copy). */
export function contents(e: DerElement): Buffer {
  return Buffer.from(e.buf.buffer, e.buf.byteOffset + e.start, e.end - e.start);
}

/** Decodes an OBJECT IDENTIFIER to its dotted form. */
export function oidText(e: DerElement): string {
  const b = contents(expectTag(e, DER_TAG.oid, "object identifier"));
  if (b.length === 0) throw new DerError("empty object identifier");
  const arcs: number[] = [];
  let value = 0;
  for (const [i, byte] of b.entries()) {
    if (value === 0 && byte === 0x80) throw new DerError("non-minimal object identifier arc");
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError("object identifier arc too large");
    if (byte & 0x80) {
      if (i === b.length - 1) throw new DerError("truncated object identifier");
      continue;
    }
    if (arcs.length === 0) {
      const first = value < 80 ? Math.floor(value / 40) : 2;
      arcs.push(first, value - first * 40);
    } else {
      arcs.push(value);
    }
    value = 0;
  }
  return arcs.join(".");
}

/** Decodes one of the ASN.1 string types X.509 names use; `undefined` for any other tag. */
export function stringValue(e: DerElement): string | undefined {
  const b = contents(e);
  switch (e.tag) {
    case DER_TAG.utf8String:
    case DER_TAG.printableString:
    case DER_TAG.ia5String:
      return b.toString("utf8");
    case DER_TAG.teletexString:
      return b.toString("latin1");
    case DER_TAG.bmpString: {
      if (b.length % 2 !== 0) throw new DerError("BMPString of odd length");
      return Buffer.from(b).swap16().toString("utf16le");
    }
    case DER_TAG.universalString: {
      if (b.length % 4 !== 0) throw new DerError("UniversalString of bad length");
      let s = "";
      for (let i = 0; i < b.length; i += 4) s += String.fromCodePoint(b.readUInt32BE(i));
      return s;
    }
    default:
      return undefined;
  }
}

const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

/** Decodes a UTCTime or GeneralizedTime (the `Z` forms X.509 requires) to a Date. */
export function timeValue(e: DerElement): Date {
  const s = contents(e).toString("latin1");
  const m =
    e.tag === DER_TAG.utcTime
      ? UTC_TIME.exec(s)
      : e.tag === DER_TAG.generalizedTime
        ? GENERALIZED_TIME.exec(s)
        : null;
  if (!m) throw new DerError(`unsupported time ${JSON.stringify(s)}`);
  const [y, mo, d, h, mi, sec] = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // RFC 5280 4.1.2.5.1: two-digit years 50–99 are 19xx, 00–49 are 20xx.
  const year = e.tag === DER_TAG.utcTime ? (y < 50 ? 2000 + y : 1900 + y) : y;
  return new Date(Date.UTC(year, mo - 1, d, h, mi, sec));
}
