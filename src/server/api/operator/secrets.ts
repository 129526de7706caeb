// SPDX-License-Identifier: Apache-2.0
/**
 * PutSecret, ListSecrets, DeleteSecret: served by the secrets store when the context has one
 * (src/server/secrets/secret-rpcs.ts); without a store the checks still run (leader, name rules,
 * reserved names) and the call answers UNIMPLEMENTED.
 */
import type { Empty } from "../../../protocol/gen/google/protobuf/empty.js";
import type {
  DeleteSecretRequest,
  ListSecretsResponse,
  PutSecretRequest,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { checkSecretName } from "../../secrets/secret-name.js";
import * as rpcs from "../../secrets/secret-rpcs.js";
import type { ApiContext } from "../api-context.js";
import { UnimplementedError } from "../handler.js";
import { requireLeader } from "../require-leader.js";

const noStore = () => new UnimplementedError("this server has no secrets store configured");

/** Leader only; name-checked (INVALID_ARGUMENT, reserved PERMISSION_DENIED). Values are never logged. */
export async function putSecret(
  ctx: ApiContext,
  req: PutSecretRequest,
  signal?: AbortSignal,
): Promise<Empty> {
  if (ctx.secrets) return rpcs.putSecret({ ...ctx, secrets: ctx.secrets }, req, signal);
  requireLeader(ctx.leadership);
  checkSecretName(req.name);
  throw noStore();
}

/** Secret names, sorted (never values). Works on standbys. */
export async function listSecrets(
  ctx: ApiContext,
  signal?: AbortSignal,
): Promise<ListSecretsResponse> {
  if (ctx.secrets) return rpcs.listSecrets({ secrets: ctx.secrets }, signal);
  throw noStore();
}

/** Leader only; name-checked; deleting a missing secret succeeds. */
export async function deleteSecret(
  ctx: ApiContext,
  req: DeleteSecretRequest,
  signal?: AbortSignal,
): Promise<Empty> {
  if (ctx.secrets) return rpcs.deleteSecret({ ...ctx, secrets: ctx.secrets }, req, signal);
  requireLeader(ctx.leadership);
  checkSecretName(req.name);
  throw noStore();
}
