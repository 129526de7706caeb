// SPDX-License-Identifier: Apache-2.0
/** CreateInstance: an on-demand instance in a group of the caller's tenant. */
import { getInstance } from "../../../db/instances-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  CreateInstanceRequest,
  CreateInstanceResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { parseInstanceId } from "../../../providers/instance-id.js";
import type { CreateOverrides } from "../../../reconcile/instance-executor.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { requireReconciler } from "./require-reconciler.js";

/** The request's overrides; empty strings and maps mean "not set" (proto3). */
export function toCreateOverrides(
  config: NonNullable<CreateInstanceRequest["config"]>,
): CreateOverrides {
  return {
    ...(config.instanceType !== "" && { instanceType: config.instanceType }),
    ...(config.subnetPool !== "" && { subnetPool: config.subnetPool }),
    ...(Object.keys(config.vars).length > 0 && { vars: { ...config.vars } }),
  };
}

/**
 * Creates an on-demand instance (never counted or scaled by the reconciler) and answers its ID and
 * provider status once the provider accepted it. Leader only. INVALID_ARGUMENT: no
 * `config.group`, a malformed `instance_id` or one of another template kind, a template override
 * (an instance always has its group's template), an unknown subnet pool. NOT_FOUND: no such group
 * in the caller's tenant. ALREADY_EXISTS: the requested ID is taken.
 */
export async function createInstance(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: CreateInstanceRequest,
): Promise<CreateInstanceResponse> {
  requireLeader(ctx.leadership);
  const config = req.config;
  if (!config || config.group === "") {
    throw new NstanceError("invalid_argument", "config.group is required");
  }
  const group = ctx.configStore.group(caller.tenant, config.group);
  if (!group) {
    throw new NstanceError(
      "not_found",
      `group ${config.group} does not exist in tenant ${caller.tenant}`,
    );
  }
  if (config.template !== "" && config.template !== group.template) {
    throw new NstanceError(
      "invalid_argument",
      `template override ${config.template} is not supported: on-demand instances of group ${group.key} use its template ${group.template}`,
    );
  }
  if (req.instanceId !== "") {
    if (parseInstanceId(req.instanceId).kind !== group.kind) {
      throw new NstanceError(
        "invalid_argument",
        `instance_id ${req.instanceId} must start with the template kind ${group.kind}`,
      );
    }
    if (getInstance(ctx.db, req.instanceId)) {
      throw new NstanceError("already_exists", `instance ${req.instanceId} already exists`);
    }
  }
  const { reconciler } = requireReconciler(ctx);
  // No call signal: a create that has begun finishes (or fails and is cleaned up) on its own,
  // bounded by the term, rather than being cut off half-way by an impatient client.
  const created = await reconciler.createOnDemand(caller.tenant, group.key, {
    ...(req.instanceId !== "" && { instanceId: req.instanceId }),
    overrides: toCreateOverrides(config),
  });
  ctx.logger.info("On-demand instance created", {
    instance_id: created.instanceId,
    tenant: caller.tenant,
    group: group.key,
    provider_instance_id: created.providerInstanceId,
    client_id: caller.clientId,
  });
  return { instanceId: created.instanceId, status: created.status };
}
