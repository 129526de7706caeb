// SPDX-License-Identifier: Apache-2.0
/** Operator client IDs for certificates minted directly from the CA: puidv7 with prefix `opr`. */
import { randomBytes } from "node:crypto";

/** Prefix of generated operator IDs. */
export const OPERATOR_ID_PREFIX = "opr";
const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A new operator ID: `opr` followed by the 26-character lowercase Crockford base32 form of a
 * UUIDv7, so IDs sort by creation time (the reference's puidv7 shape).
 */
export function newOperatorId(now: Date = new Date()): string {
  const bytes = randomBytes(16);
  const ms = BigInt(now.getTime());
  for (let i = 0; i < 6; i++) bytes[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70; // version 7
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 4122 variant
  let n = BigInt(`0x${bytes.toString("hex")}`);
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD[Number(n & 31n)]! + out;
    n >>= 5n;
  }
  return OPERATOR_ID_PREFIX + out;
}
