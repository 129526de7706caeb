// SPDX-License-Identifier: Apache-2.0
/**
 * Queries over `public_keys` (agent-generated public keys, by key file name such as
 * `kubelet.server.pub`) and `issued_certificates` (the certificate last issued for each
 * `certificate` file of an instance, so it can be renewed before it expires).
 */
import type { Db } from "../../db/database.js";

/** A submitted public key. */
export interface PublicKeyRow {
  instanceId: string;
  /** Key file name, e.g. `kubelet.server.pub`. */
  filename: string;
  publicKeyPem: string;
  submittedAt: number;
}

/** The certificate last issued for a file. */
export interface IssuedCertificateRow {
  instanceId: string;
  /** The certificate file, e.g. `kubelet.crt`. */
  filename: string;
  /** The certificate template (`certificates.<name>`). */
  certificateName: string;
  /** The key file it certifies, e.g. `kubelet.server.pub`. */
  keyFile: string;
  serial: string;
  issuedAt: number;
  expiresAt: number;
}

/** Every public key of an instance, by key file name. */
export function listPublicKeys(db: Db, instanceId: string): Map<string, PublicKeyRow> {
  const rows = db
    .prepare("SELECT filename, public_key_pem, submitted_at FROM public_keys WHERE instance_id = ?")
    .all(instanceId) as Array<{ filename: string; public_key_pem: string; submitted_at: number }>;
  return new Map(
    rows.map((r) => [
      r.filename,
      {
        instanceId,
        filename: r.filename,
        publicKeyPem: r.public_key_pem,
        submittedAt: r.submitted_at,
      },
    ]),
  );
}

/**
 * Stores submitted keys in one transaction and returns the key files whose key is new or changed
 * (their certificates must be reissued). Resubmitting the same key changes nothing.
 */
export function upsertPublicKeys(
  db: Db,
  instanceId: string,
  keys: ReadonlyArray<{ filename: string; publicKeyPem: string }>,
  submittedAt: number,
): string[] {
  const current = db.prepare(
    "SELECT public_key_pem FROM public_keys WHERE instance_id = ? AND filename = ?",
  );
  const upsert = db.prepare(
    `INSERT INTO public_keys (instance_id, filename, public_key_pem, submitted_at)
     VALUES (?, ?, ?, ?)
     ON CONFLICT (instance_id, filename) DO UPDATE SET public_key_pem = excluded.public_key_pem,
       submitted_at = excluded.submitted_at, certificate_serial = NULL,
       certificate_issued_at = NULL`,
  );
  const changed: string[] = [];
  db.transaction(() => {
    for (const k of keys) {
      const row = current.get(instanceId, k.filename) as { public_key_pem: string } | undefined;
      if (row?.public_key_pem === k.publicKeyPem) continue;
      upsert.run(instanceId, k.filename, k.publicKeyPem, submittedAt);
      changed.push(k.filename);
    }
  })();
  return changed;
}

/** Every certificate issued to an instance, by certificate file name. */
export function listIssuedCertificates(
  db: Db,
  instanceId: string,
): Map<string, IssuedCertificateRow> {
  const rows = db
    .prepare(
      `SELECT filename, certificate_name, key_file, serial, issued_at, expires_at
       FROM issued_certificates WHERE instance_id = ?`,
    )
    .all(instanceId) as Array<{
    filename: string;
    certificate_name: string;
    key_file: string;
    serial: string;
    issued_at: number;
    expires_at: number;
  }>;
  return new Map(
    rows.map((r) => [
      r.filename,
      {
        instanceId,
        filename: r.filename,
        certificateName: r.certificate_name,
        keyFile: r.key_file,
        serial: r.serial,
        issuedAt: r.issued_at,
        expiresAt: r.expires_at,
      },
    ]),
  );
}

/** Records issued certificates (and the serial on the key row), in one transaction. */
export function recordIssuedCertificates(db: Db, rows: readonly IssuedCertificateRow[]): void {
  const upsert = db.prepare(
    `INSERT INTO issued_certificates
       (instance_id, filename, certificate_name, key_file, serial, issued_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (instance_id, filename) DO UPDATE SET certificate_name = excluded.certificate_name,
       key_file = excluded.key_file, serial = excluded.serial, issued_at = excluded.issued_at,
       expires_at = excluded.expires_at`,
  );
  const onKey = db.prepare(
    `UPDATE public_keys SET certificate_serial = ?, certificate_issued_at = ?
     WHERE instance_id = ? AND filename = ?`,
  );
  db.transaction(() => {
    for (const r of rows) {
      upsert.run(
        r.instanceId,
        r.filename,
        r.certificateName,
        r.keyFile,
        r.serial,
        r.issuedAt,
        r.expiresAt,
      );
      onKey.run(r.serial, r.issuedAt, r.instanceId, r.keyFile);
    }
  })();
}
