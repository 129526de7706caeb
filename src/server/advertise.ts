// SPDX-License-Identifier: Apache-2.0
/** Works out the `host:port` each listener advertises to peers, agents and operators. */
import { networkInterfaces } from "node:os";
import type { ListenAddresses } from "../config/server-config.js";
import { splitHostPort } from "../http/http-server.js";
import type { BindName, ServerSettings } from "./server-settings.js";

const UNSPECIFIED = new Set(["", "0.0.0.0", "::", "[::]"]);

/** The first non-internal IPv4 address of this machine, else 127.0.0.1. */
export function detectPrimaryAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family === "IPv4" && !a.internal) return a.address;
    }
  }
  return "127.0.0.1";
}

/** Formats a host and port, bracketing IPv6 hosts. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Effective bind addresses: the per-server overrides (flags/env) win over the shard config, so an HA
 * pair can share one host.
 */
export function effectiveBinds(
  configBind: ListenAddresses,
  settings: Pick<ServerSettings, "bindOverrides">,
): ListenAddresses {
  const out = { ...configBind } as Record<BindName, string>;
  for (const [k, v] of Object.entries(settings.bindOverrides)) {
    if (v !== undefined) out[k as BindName] = v;
  }
  return out;
}

/**
 * Advertised addresses. Host: `--advertise-host`, else the config's advertise host, else (empty or
 * unspecified) the bind host when it is specific, else the primary interface. Port: the overridden
 * bind port when the bind address was overridden, else the config's advertise port.
 */
export function effectiveAdvertise(
  configAdvertise: ListenAddresses,
  configBind: ListenAddresses,
  settings: Pick<ServerSettings, "bindOverrides" | "advertiseHost">,
  detect: () => string = detectPrimaryAddress,
): ListenAddresses {
  const out = {} as Record<BindName, string>;
  for (const name of Object.keys(configBind) as BindName[]) {
    const adv = splitHostPort(configAdvertise[name] || configBind[name]);
    const override = settings.bindOverrides[name];
    const bind = splitHostPort(override ?? configBind[name]);
    const rawAdvHost = (configAdvertise[name] ?? "").slice(
      0,
      Math.max(0, (configAdvertise[name] ?? "").lastIndexOf(":")),
    );
    let host = settings.advertiseHost ?? (UNSPECIFIED.has(rawAdvHost) ? "" : adv.host);
    if (host === "") host = UNSPECIFIED.has(bind.host) ? detect() : bind.host;
    out[name] = joinHostPort(host, override ? bind.port : adv.port || bind.port);
  }
  return out;
}
