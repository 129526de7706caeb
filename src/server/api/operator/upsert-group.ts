// SPDX-License-Identifier: Apache-2.0
/** UpsertGroup: create or change a group of the caller's tenant in the dynamic groups file. */
import type { GroupUpsert } from "../../../config/group-ops.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  UpsertGroupRequest,
  UpsertGroupResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { toGroupStatus } from "./group-status.js";

/**
 * Maps the request's GroupConfig to a groups-file update. Empty strings and maps mean "not set"
 * (proto3 cannot tell them apart); `size` is always set because the message always carries it.
 */
export function toGroupUpsert(config: NonNullable<UpsertGroupRequest["config"]>): GroupUpsert {
  return {
    ...(config.template !== "" && { template: config.template }),
    size: config.size,
    ...(config.instanceType !== "" && { instance_type: config.instanceType }),
    ...(config.subnetPool !== "" && { subnet_pool: config.subnetPool }),
    ...(Object.keys(config.vars).length > 0 && { vars: { ...config.vars } }),
    ...(Object.keys(config.args).length > 0 && { args: { ...config.args } }),
  };
}

/**
 * Creates or changes group `key` of the caller's tenant; leader only. A missing key or config, an
 * invalid key, a restricted field of a static group or any other rule violation is
 * INVALID_ARGUMENT with the reason (differs from Go, which answers INTERNAL).
 */
export async function upsertGroup(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: UpsertGroupRequest,
  signal?: AbortSignal,
): Promise<UpsertGroupResponse> {
  requireLeader(ctx.leadership);
  if (req.key === "") throw new NstanceError("invalid_argument", "key is required");
  if (!req.config) throw new NstanceError("invalid_argument", "config is required");
  if (req.config.size < 0) {
    throw new NstanceError("invalid_argument", `size must not be negative, got ${req.config.size}`);
  }
  const group = await ctx.configStore.upsertGroup(
    caller.tenant,
    req.key,
    toGroupUpsert(req.config),
    signal,
  );
  ctx.logger.info("Group upserted", {
    tenant: caller.tenant,
    group: req.key,
    size: group.size,
    client_id: caller.clientId,
  });
  return { group: toGroupStatus(ctx.db, group) };
}
