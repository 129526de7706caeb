// SPDX-License-Identifier: Apache-2.0
/** `host:port` listen and advertise addresses. */
import { isIP } from "node:net";

/** A parsed address. `host` is empty for `:8990`; IPv6 hosts are given without brackets. */
export interface HostPort {
  host: string;
  port: number;
}

/** A loose JSON Schema pattern for `host:port` (the parser below is the real check). */
export const HOST_PORT_PATTERN = "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$";

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port` (`0.0.0.0:8990`, `[::1]:8992`, `:8993`, `localhost:0`); `undefined` if invalid. */
export function parseHostPort(text: string): HostPort | undefined {
  const colon = text.lastIndexOf(":");
  if (colon < 0) return undefined;
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  if (host.startsWith("[")) {
    if (!host.endsWith("]")) return undefined;
    host = host.slice(1, -1);
    if (isIP(host) !== 6) return undefined;
  } else if (host !== "" && isIP(host) !== 4 && !HOSTNAME.test(host)) {
    return undefined;
  }
  return { host, port };
}

/** True for hosts that listen on every interface (or, for advertise addresses, mean auto-detect). */
export function isWildcardHost(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::";
}

/** True when two listen addresses would claim the same port (port 0 never conflicts). */
export function addressesConflict(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || b.port !== a.port) return false;
  return a.host === b.host || isWildcardHost(a.host) || isWildcardHost(b.host);
}
