// SPDX-License-Identifier: Apache-2.0
/** Certificate serial numbers. */
import { randomBytes } from "node:crypto";

/**
 * Returns a new serial as 32 lowercase hex digits: 6 bytes of milliseconds since the epoch, then 10
 * random bytes. Serials sort by issue time and do not collide, even for certificates issued in the
 * same millisecond by different servers; the first byte stays below 0x80, so it is positive.
 */
export function newCertificateSerial(now: Date = new Date()): string {
  const buf = Buffer.alloc(16);
  buf.writeUIntBE(now.getTime(), 0, 6);
  randomBytes(10).copy(buf, 6);
  return buf.toString("hex");
}
