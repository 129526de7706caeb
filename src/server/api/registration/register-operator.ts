// SPDX-License-Identifier: Apache-2.0
/**
 * RegisterOperator: an operator exchanges a nonce minted by `nstance-admin` for a client
 * certificate. The nonce is bound to the first public key that uses it by a create-only write of
 * `cluster/operator-nonce/{sha256hex(nonce)}.pem`, so any server of any shard agrees on the binding.
 */
import { createHash } from "node:crypto";
import { upsertOperator } from "../../../db/operators-table.js";
import { DEFAULT_CLUSTER_PREFIX } from "../../../pki/cluster-identity.js";
import { parseEd25519PublicKey, spkiDer } from "../../../pki/ed25519-keys.js";
import { issueClientCertificate } from "../../../pki/issue-certificate.js";
import { verifyNonceJwt } from "../../../pki/nonce-jwt.js";
import type {
  RegisterOperatorRequest,
  RegisterOperatorResponse,
} from "../../../protocol/gen/nstance/v1/registration.js";
import { NstanceError, PreconditionFailedError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { clientCertTtlMs } from "../client-cert-ttl.js";
import { requireLeader } from "../require-leader.js";
import { operatorRecordKey, writeOperatorRecord } from "./operator-record.js";

/** Prefix of operator client IDs (the certificate CN). */
export const OPERATOR_ID_PREFIX = "opr-";

/** Storage key binding an operator nonce to its first public key. */
export function operatorNonceKey(nonceJwt: string): string {
  const digest = createHash("sha256").update(nonceJwt).digest("hex");
  return `${DEFAULT_CLUSTER_PREFIX}operator-nonce/${digest}.pem`;
}

/**
 * The client ID of the operator registered with `nonceJwt`: stable for a retry with the same
 * nonce, distinct between nonces. Differs from Go, whose operators all share the cluster ID as CN.
 */
export function operatorClientId(nonceJwt: string): string {
  const digest = createHash("sha256").update(`operator-id:${nonceJwt}`).digest("hex");
  return `${OPERATOR_ID_PREFIX}${digest.slice(0, 24)}`;
}

/**
 * Registers an operator:
 * 1. this server leads the shard, else FAILED_PRECONDITION naming the leader;
 * 2. the nonce verifies with kind `operator` (UNAUTHENTICATED otherwise), names this cluster and
 *    has sub == cluster ID (INVALID_ARGUMENT otherwise);
 * 3. the public key is an Ed25519 PKIX PEM (INVALID_ARGUMENT);
 * 4. the nonce is unused or was bound to this same key (a retry); another key is UNAUTHENTICATED.
 * Then it issues the certificate (role operator, O = the nonce's tenant) and records the operator.
 */
export async function registerOperator(
  ctx: ApiContext,
  req: RegisterOperatorRequest,
  signal?: AbortSignal,
): Promise<RegisterOperatorResponse> {
  requireLeader(ctx.leadership);
  const now = new Date((ctx.now ?? Date.now)());
  const claims = await verifyNonceJwt(req.registrationNonceJwt, {
    verifyKey: ctx.identity.nonceVerifyKey,
    kind: "operator",
    clusterId: ctx.clusterId,
    now,
  });
  const publicKey = parseEd25519PublicKey(req.publicKeyPem);
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();

  const bindingKey = operatorNonceKey(req.registrationNonceJwt);
  try {
    await ctx.storage.put(bindingKey, publicKeyPem, {
      condition: { ifNoneMatch: "*" },
      contentType: "application/x-pem-file",
      signal,
    });
  } catch (err) {
    if (!(err instanceof PreconditionFailedError)) throw err;
    const bound = await ctx.storage.get(bindingKey, signal);
    let sameKey = false;
    try {
      sameKey =
        bound !== undefined &&
        spkiDer(parseEd25519PublicKey(bound.body)).equals(spkiDer(publicKey));
    } catch {
      // An unreadable binding cannot prove the caller's key: refuse like another key.
    }
    if (!sameKey) {
      throw new NstanceError(
        "unauthenticated",
        "registration nonce has already been used with another public key",
      );
    }
  }

  const clientId = operatorClientId(req.registrationNonceJwt);
  const cert = await issueClientCertificate({
    ca: ctx.identity.ca,
    publicKeyPem,
    clientId,
    tenant: claims.tenant,
    role: "operator",
    ttlMs: clientCertTtlMs(ctx.configStore.current().config, "operator"),
    now,
  });
  await writeOperatorRecord(
    ctx.storage,
    operatorRecordKey(claims.tenant, clientId),
    {
      client_id: clientId,
      tenant: claims.tenant,
      public_key_pem: publicKeyPem,
      cert_serial: cert.serial,
      registered_at: now.toISOString(),
      expires_at: cert.expiresAt.toISOString(),
    },
    signal,
  );
  upsertOperator(ctx.db, {
    id: clientId,
    tenant: claims.tenant,
    publicKey: publicKeyPem,
    certSerial: cert.serial,
    registeredAt: now.getTime(),
  });
  ctx.logger.info("Operator registered", {
    client_id: clientId,
    tenant: claims.tenant,
    cert_serial: cert.serial,
    expires_at: cert.expiresAt.toISOString(),
  });
  return { clientCertificatePem: Buffer.from(cert.certificatePem), expiresAt: cert.expiresAt };
}
