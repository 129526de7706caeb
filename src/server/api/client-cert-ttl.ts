// SPDX-License-Identifier: Apache-2.0
/** Lifetime of the client certificates the API issues. */
import type { ServerConfig } from "../../config/server-config.js";
import { DEFAULT_CLIENT_CERT_TTL_MS } from "../../pki/issue-certificate.js";
import type { ClientRole } from "../../pki/role-extension.js";

/**
 * `certificates.agent.ttl` / `certificates.operator.ttl` (hours) when the config has that
 * certificate template, else the reference's 24 h. Renewal uses the same rule as registration
 * (differs from Go, whose renew path defaults to 8760 h).
 */
export function clientCertTtlMs(config: ServerConfig, role: ClientRole): number {
  const ttlHours = config.certificates[role]?.ttlHours;
  return ttlHours !== undefined && ttlHours > 0 ? ttlHours * 3_600_000 : DEFAULT_CLIENT_CERT_TTL_MS;
}
