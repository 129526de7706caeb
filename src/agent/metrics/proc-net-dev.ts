// SPDX-License-Identifier: Apache-2.0
/** Network byte counters from `/proc/net/dev`. */

/** Cumulative bytes over all non-loopback interfaces. */
export interface NetworkCounters {
  receivedBytes: number;
  sentBytes: number;
}

/** Interfaces left out of the totals: loopback traffic never leaves the machine. */
const LOOPBACK = new Set(["lo"]);

/**
 * Parses `/proc/net/dev` and sums receive and transmit bytes over every interface except
 * loopback. Handles the kernel's habit of gluing a long interface name to its first counter.
 */
export function parseNetDev(text: string): NetworkCounters {
  let receivedBytes = 0;
  let sentBytes = 0;
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "" || name.includes("|") || LOOPBACK.has(name)) continue;
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (fields.length < 16 || fields.some((n) => !Number.isFinite(n))) {
      throw new Error(`/proc/net/dev: malformed line for ${name}`);
    }
    receivedBytes += fields[0]!;
    sentBytes += fields[8]!;
  }
  return { receivedBytes, sentBytes };
}
