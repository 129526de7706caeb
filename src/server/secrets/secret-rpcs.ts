// SPDX-License-Identifier: Apache-2.0
/**
 * The Operator RPCs PutSecret, ListSecrets and DeleteSecret over the secrets store. Writes need the
 * shard leader (the standby rule); listing works anywhere. Values are never logged or returned.
 * Secrets are cluster-wide: every tenant's operators share them (as in the reference).
 */
import type { Empty } from "../../protocol/gen/google/protobuf/empty.js";
import type {
  DeleteSecretRequest,
  ListSecretsResponse,
  PutSecretRequest,
} from "../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../shared/errors.js";
import type { Leadership } from "../api/api-context.js";
import { requireLeader } from "../api/require-leader.js";
import { checkSecretName } from "./secret-name.js";
import type { SecretsStore } from "./secrets-store.js";

/** Largest secret value accepted (the reference's Parameter Store limit is 4 KiB; we allow more). */
export const DEFAULT_MAX_SECRET_BYTES = 1024 * 1024;

/** What the secret RPCs need. */
export interface SecretRpcDeps {
  leadership: Leadership;
  secrets: SecretsStore;
}

/** Leader only; name-checked (INVALID_ARGUMENT, reserved: PERMISSION_DENIED); size-checked. */
export async function putSecret(
  deps: SecretRpcDeps,
  req: PutSecretRequest,
  signal?: AbortSignal,
): Promise<Empty> {
  requireLeader(deps.leadership);
  checkSecretName(req.name);
  if (req.value.length > DEFAULT_MAX_SECRET_BYTES) {
    throw new NstanceError(
      "invalid_argument",
      `secret value is ${req.value.length} bytes; the limit is ${DEFAULT_MAX_SECRET_BYTES}`,
    );
  }
  await deps.secrets.put(req.name, req.value, signal);
  return {};
}

/** Names of the stored secrets, sorted; reserved names are not listed. */
export async function listSecrets(
  deps: Pick<SecretRpcDeps, "secrets">,
  signal?: AbortSignal,
): Promise<ListSecretsResponse> {
  return { names: await deps.secrets.list(signal) };
}

/** Leader only; name-checked; deleting a missing secret succeeds. */
export async function deleteSecret(
  deps: SecretRpcDeps,
  req: DeleteSecretRequest,
  signal?: AbortSignal,
): Promise<Empty> {
  requireLeader(deps.leadership);
  checkSecretName(req.name);
  await deps.secrets.delete(req.name, signal);
  return {};
}
