// SPDX-License-Identifier: Apache-2.0
/** Host uptime from `/proc/uptime`. */

/** Parses `/proc/uptime` (`"262215.45 1234.56"`) into whole seconds since boot. */
export function parseUptimeSeconds(text: string): number {
  const first = text.trim().split(/\s+/)[0] ?? "";
  const s = Number(first);
  if (first === "" || !Number.isFinite(s) || s < 0)
    throw new Error(`/proc/uptime: malformed "${text.trim()}"`);
  return Math.floor(s);
}
