// SPDX-License-Identifier: Apache-2.0
/**
 * The certificate log: one object per batch of certificates issued to an instance,
 * `{prefix}certlog/{tenant}.{yyyyMMddHHmmssSSS}.{instanceId}.json` (reference §2.5), so what the CA
 * signed can be audited from the bucket alone.
 *
 * Differs from Go: the timestamp has real milliseconds (Go writes seconds and a literal `000`).
 */
import type { ObjectStorage } from "../../storage/object-storage.js";

/** One certificate in a certlog entry. */
export interface CertlogCertificate {
  certificateName: string;
  /** File it was delivered as. */
  filename: string;
  serial: string;
  expiresAt: Date;
}

/** A batch of certificates issued to one instance. */
export interface CertlogEntry {
  instanceId: string;
  tenant: string;
  issuedAt: Date;
  certificates: readonly CertlogCertificate[];
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** `yyyyMMddHHmmssSSS` in UTC. */
export function certlogTimestamp(d: Date): string {
  return (
    `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}` +
    `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}` +
    pad(d.getUTCMilliseconds(), 3)
  );
}

/** Storage key of a certlog entry. */
export function certlogKey(
  prefix: string,
  e: Pick<CertlogEntry, "tenant" | "issuedAt" | "instanceId">,
): string {
  return `${prefix}certlog/${e.tenant}.${certlogTimestamp(e.issuedAt)}.${e.instanceId}.json`;
}

/** Writes one certlog entry (snake_case JSON); returns its key. */
export async function writeCertlog(
  storage: Pick<ObjectStorage, "put">,
  prefix: string,
  e: CertlogEntry,
  signal?: AbortSignal,
): Promise<string> {
  const key = certlogKey(prefix, e);
  const body = {
    instance_id: e.instanceId,
    tenant: e.tenant,
    issued_at: e.issuedAt.toISOString(),
    batch_size: e.certificates.length,
    certificates: e.certificates.map((c) => ({
      certificate_name: c.certificateName,
      filename: c.filename,
      serial_number: c.serial,
      expires_at: c.expiresAt.toISOString(),
    })),
  };
  await storage.put(key, `${JSON.stringify(body, null, 2)}\n`, {
    contentType: "application/json",
    signal,
  });
  return key;
}
