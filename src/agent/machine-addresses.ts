// SPDX-License-Identifier: Apache-2.0
/** The machine's private addresses and hostname, as reported at registration. */
import { networkInterfaces, hostname as osHostname } from "node:os";

/** What the agent reports about itself; empty strings when unknown. */
export interface MachineAddresses {
  ipv4: string;
  ipv6: string;
  hostname: string;
}

/** One interface address, as `os.networkInterfaces()` lists it. */
export interface InterfaceAddress {
  address: string;
  family: string | number;
  internal: boolean;
}

/**
 * Picks the first non-loopback IPv4 address and the first non-loopback, non-link-local IPv6
 * address, in interface order (the primary NIC comes first on cloud VMs).
 */
export function pickMachineAddresses(
  interfaces: Readonly<Record<string, readonly InterfaceAddress[] | undefined>>,
): { ipv4: string; ipv6: string } {
  let ipv4 = "";
  let ipv6 = "";
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      const family = typeof a.family === "number" ? `IPv${a.family}` : a.family;
      if (family === "IPv4" && ipv4 === "") ipv4 = a.address;
      if (family === "IPv6" && ipv6 === "" && !/^fe[89ab]/i.test(a.address)) ipv6 = a.address;
    }
  }
  return { ipv4, ipv6 };
}

/** Configured values win; the rest are detected from the interfaces and the OS hostname. */
export function machineAddresses(configured: {
  ipv4?: string;
  ipv6?: string;
  hostname?: string;
}): MachineAddresses {
  const detected = pickMachineAddresses(networkInterfaces());
  return {
    ipv4: configured.ipv4 ?? detected.ipv4,
    ipv6: configured.ipv6 ?? detected.ipv6,
    hostname: configured.hostname ?? osHostname(),
  };
}
