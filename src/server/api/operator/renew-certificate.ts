// SPDX-License-Identifier: Apache-2.0
/** RenewCertificate: a new operator certificate for the caller's identity. */
import { upsertOperator } from "../../../db/operators-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import { parseEd25519PublicKey } from "../../../pki/ed25519-keys.js";
import { issueClientCertificate } from "../../../pki/issue-certificate.js";
import type {
  RenewCertificateRequest,
  RenewCertificateResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { clientCertTtlMs } from "../client-cert-ttl.js";
import { operatorRecordKey, writeOperatorRecord } from "../registration/operator-record.js";
import { requireLeader } from "../require-leader.js";

/**
 * Issues a certificate with the caller's CN, tenant and role for the given Ed25519 key (the same
 * key or a new one); leader only. Updates the operator record and its cache row.
 */
export async function renewCertificate(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: RenewCertificateRequest,
  signal?: AbortSignal,
): Promise<RenewCertificateResponse> {
  requireLeader(ctx.leadership);
  const publicKeyPem = parseEd25519PublicKey(req.publicKeyPem)
    .export({ type: "spki", format: "pem" })
    .toString();
  const now = new Date((ctx.now ?? Date.now)());
  const cert = await issueClientCertificate({
    ca: ctx.identity.ca,
    publicKeyPem,
    clientId: caller.clientId,
    tenant: caller.tenant,
    role: caller.role,
    ttlMs: clientCertTtlMs(ctx.configStore.current().config, caller.role),
    now,
  });
  await writeOperatorRecord(
    ctx.storage,
    operatorRecordKey(caller.tenant, caller.clientId),
    {
      client_id: caller.clientId,
      tenant: caller.tenant,
      public_key_pem: publicKeyPem,
      cert_serial: cert.serial,
      expires_at: cert.expiresAt.toISOString(),
      renewed_at: now.toISOString(),
    },
    signal,
  );
  upsertOperator(ctx.db, {
    id: caller.clientId,
    tenant: caller.tenant,
    publicKey: publicKeyPem,
    certSerial: cert.serial,
    registeredAt: now.getTime(),
  });
  ctx.logger.info("Operator certificate renewed", {
    client_id: caller.clientId,
    tenant: caller.tenant,
    previous_serial: caller.serial,
    cert_serial: cert.serial,
    expires_at: cert.expiresAt.toISOString(),
  });
  return { clientCertificatePem: Buffer.from(cert.certificatePem), expiresAt: cert.expiresAt };
}
