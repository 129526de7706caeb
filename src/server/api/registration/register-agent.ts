// SPDX-License-Identifier: Apache-2.0
/**
 * RegisterAgent: an agent exchanges its single-use nonce for a client certificate. Checks run in
 * the reference's order (§3.1) and each refusal carries its documented status code.
 */

import { recordDecision } from "../../../db/decisions-table.js";
import { findInstanceByNonce, markInstanceRegistered } from "../../../db/instances-table.js";
import { parseEd25519PublicKey } from "../../../pki/ed25519-keys.js";
import { issueClientCertificate } from "../../../pki/issue-certificate.js";
import { verifyNonceJwt } from "../../../pki/nonce-jwt.js";
import type {
  RegisterAgentRequest,
  RegisterAgentResponse,
} from "../../../protocol/gen/nstance/v1/registration.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { clientCertTtlMs } from "../client-cert-ttl.js";
import { requireLeader } from "../require-leader.js";
import { type JsonRecord, updateJsonObject } from "../update-json-object.js";
import { instanceRecordFromRow, instanceRecordKey } from "./instance-record.js";

/** State shared by RegisterAgent calls of one server. */
export interface RegisterAgentState {
  /** Instances whose registration is under way, so a concurrent replay of the nonce is refused. */
  inFlight: Set<string>;
}

/**
 * The record without `registration_jwt`. The nonce is kept there only so a cache rebuild lets an
 * unregistered agent still register; once spent it is a credential with no use, and the bucket
 * must not hold credentials in clear.
 */
function withoutSpentNonce(record: JsonRecord): JsonRecord {
  const { registration_jwt: _spent, ...rest } = record;
  return rest;
}

const alreadyUsed = () =>
  new NstanceError("unauthenticated", "registration nonce has already been used");

/**
 * Registers an agent:
 * 1. this server leads the shard, else FAILED_PRECONDITION naming the leader;
 * 2. the nonce verifies (EdDSA signature, exp/nbf, kind `agent`, non-empty claims), else
 *    UNAUTHENTICATED; another cluster or shard is INVALID_ARGUMENT;
 * 3. the nonce belongs to an instance this shard issued and that has not registered, else
 *    UNAUTHENTICATED (a replay included);
 * 4. the public key is an Ed25519 PKIX PEM, else INVALID_ARGUMENT.
 * Then it issues the certificate (CN instance ID, O tenant, role agent), updates the instance
 * record in storage, marks the SQLite row registered, records the `registered` decision and tells
 * the reconciler (if this term's is running) that the instance changed.
 */
export async function registerAgent(
  ctx: ApiContext,
  state: RegisterAgentState,
  req: RegisterAgentRequest,
  signal?: AbortSignal,
): Promise<RegisterAgentResponse> {
  requireLeader(ctx.leadership);
  const now = new Date((ctx.now ?? Date.now)());
  const claims = await verifyNonceJwt(req.registrationNonceJwt, {
    verifyKey: ctx.identity.nonceVerifyKey,
    kind: "agent",
    clusterId: ctx.clusterId,
    shard: ctx.shard,
    now,
  });
  const row = findInstanceByNonce(ctx.db, req.registrationNonceJwt);
  if (!row || row.id !== claims.subject || row.tenant !== claims.tenant) {
    throw new NstanceError(
      "unauthenticated",
      "registration nonce does not belong to an instance this shard created",
    );
  }
  if (row.deletedAt !== undefined) {
    throw new NstanceError("unauthenticated", "the nonce's instance has been deleted");
  }
  if (row.registeredAt !== undefined || state.inFlight.has(row.id)) throw alreadyUsed();
  const publicKey = parseEd25519PublicKey(req.publicKeyPem);
  const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();

  state.inFlight.add(row.id);
  try {
    const cert = await issueClientCertificate({
      ca: ctx.identity.ca,
      publicKeyPem,
      clientId: row.id,
      tenant: row.tenant,
      role: "agent",
      ttlMs: clientCertTtlMs(ctx.configStore.current().config, "agent"),
      now,
    });
    const at = now.toISOString();
    const reported = {
      ...(req.privateIpv4 && { private_ipv4: req.privateIpv4 }),
      ...(req.privateIpv6 && { private_ipv6: req.privateIpv6 }),
      ...(req.hostname && { hostname: req.hostname }),
    };
    await updateJsonObject(
      ctx.storage,
      instanceRecordKey(ctx.prefix, row.tenant, row.id),
      (current) => ({
        // No record yet (a crash between the row and the record): rebuild one from the row.
        ...withoutSpentNonce(current ?? instanceRecordFromRow(row)),
        ...reported,
        registered_at: at,
        public_key_pem: publicKeyPem,
        cert_serial: cert.serial,
        cert_expires_at: cert.expiresAt.toISOString(),
        last_updated: at,
      }),
      { signal },
    );
    const marked = markInstanceRegistered(ctx.db, {
      id: row.id,
      registeredAt: now.getTime(),
      instancePub: publicKeyPem,
      certSerial: cert.serial,
      ip4: req.privateIpv4,
      ip6: req.privateIpv6,
      hostname: req.hostname,
    });
    if (!marked) throw alreadyUsed();
    recordDecision(ctx.db, {
      instanceId: row.id,
      decision: "registered",
      reason: "nonce",
      evidence: {
        cert_serial: cert.serial,
        cert_expires_at: cert.expiresAt.toISOString(),
        registration_ms: Math.max(0, now.getTime() - row.createdAt),
        ...reported,
      },
      at: now.getTime(),
    });
    // A registered instance counts as ready (and may now be drained): the reconciler re-plans.
    ctx.reconciler?.()?.reconciler.instanceChanged(row.id);
    ctx.logger.info("Agent registered", {
      instance_id: row.id,
      tenant: row.tenant,
      group: row.groupKey,
      cert_serial: cert.serial,
      expires_at: cert.expiresAt.toISOString(),
    });
    return {
      clientCertificatePem: Buffer.from(cert.certificatePem),
      expiresAt: cert.expiresAt,
    };
  } finally {
    state.inFlight.delete(row.id);
  }
}
