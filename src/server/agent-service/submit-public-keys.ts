// SPDX-License-Identifier: Apache-2.0
/**
 * SubmitPublicKeys: the agent hands in the public halves of keys it generated. instance_id must be
 * the certificate's CN (PERMISSION_DENIED); every key must be an Ed25519 PKIX PEM or base64 DER
 * (INVALID_ARGUMENT, and then nothing is stored). The call answers once the keys are committed to
 * SQLite; certificates for new or replaced keys are then issued and delivered asynchronously.
 */
import type { Db } from "../../db/database.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import type { Empty } from "../../protocol/gen/google/protobuf/empty.js";
import type { SubmitPublicKeysRequest } from "../../protocol/gen/nstance/v1/agent.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { Leadership } from "../api/api-context.js";
import { requireLeader } from "../api/require-leader.js";
import type { AgentKeyCache } from "./agent-key-cache.js";
import { callerInstance, requireOwnInstance } from "./caller-instance.js";
import type { FileDelivery } from "./file-delivery.js";
import { parseSubmittedPublicKey, publicKeyFileName } from "./submitted-public-key.js";

/** Most keys accepted in one call. */
export const DEFAULT_MAX_KEYS_PER_SUBMISSION = 64;

/** What SubmitPublicKeys needs. */
export interface SubmitPublicKeysDeps {
  db: Db;
  leadership: Leadership;
  keys: AgentKeyCache;
  delivery: Pick<FileDelivery, "onKeysChanged">;
  logger: Logger;
  now: () => number;
}

/** Stores the caller's public keys; see the file comment. */
export async function submitPublicKeys(
  deps: SubmitPublicKeysDeps,
  caller: ClientIdentity,
  req: SubmitPublicKeysRequest,
): Promise<Empty> {
  requireLeader(deps.leadership);
  requireOwnInstance(caller, req.instanceId);
  const ref = callerInstance(deps.db, caller);
  if (req.keys.length > DEFAULT_MAX_KEYS_PER_SUBMISSION) {
    throw new NstanceError(
      "invalid_argument",
      `${req.keys.length} keys submitted; the limit is ${DEFAULT_MAX_KEYS_PER_SUBMISSION}`,
    );
  }
  const parsed = new Map<string, string>();
  for (const k of req.keys) {
    const filename = publicKeyFileName(k.filename);
    if (parsed.has(filename)) {
      throw new NstanceError("invalid_argument", `key ${filename} is submitted twice`);
    }
    try {
      parsed.set(filename, parseSubmittedPublicKey(k.publicKeyPem));
    } catch (err) {
      throw new NstanceError("invalid_argument", `key ${filename}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }
  const changed = deps.keys.storeKeys(
    ref.id,
    [...parsed].map(([filename, publicKeyPem]) => ({ filename, publicKeyPem })),
    deps.now(),
  );
  deps.logger.info("Public keys submitted", {
    instance_id: ref.id,
    keys: [...parsed.keys()],
    changed,
  });
  if (changed.length > 0) deps.delivery.onKeysChanged(ref, changed);
  return {};
}
