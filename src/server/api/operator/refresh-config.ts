// SPDX-License-Identifier: Apache-2.0
/** RefreshConfig: reload static config and dynamic groups from storage now. */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { RefreshConfigResponse } from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";

/**
 * Reloads the configuration; leader only. An invalid config is INVALID_ARGUMENT listing its
 * problems (differs from Go's INTERNAL) and the old configuration stays in force.
 */
export async function refreshConfig(
  ctx: ApiContext,
  caller: ClientIdentity,
  signal?: AbortSignal,
): Promise<RefreshConfigResponse> {
  requireLeader(ctx.leadership);
  ctx.logger.info("Configuration refresh requested", {
    tenant: caller.tenant,
    client_id: caller.clientId,
  });
  return ctx.configStore.refresh(signal);
}
