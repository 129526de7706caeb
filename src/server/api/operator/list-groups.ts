// SPDX-License-Identifier: Apache-2.0
/** ListGroups: the caller tenant's groups, sorted by key. */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { ListGroupsResponse } from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { toGroupStatus } from "./group-status.js";

/** Lists the groups of the caller's tenant (and only those). Works on standbys. */
export function listGroups(ctx: ApiContext, caller: ClientIdentity): ListGroupsResponse {
  const groups = ctx.configStore
    .current()
    .effective.groups.filter((g) => g.tenant === caller.tenant)
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((g) => toGroupStatus(ctx.db, g));
  return { groups };
}
