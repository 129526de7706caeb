// SPDX-License-Identifier: Apache-2.0
/** GetInstanceHistory: every decision recorded about an instance of the caller's tenant. */
import { listInstanceDecisions } from "../../../db/instances-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  GetInstanceHistoryRequest,
  GetInstanceHistoryResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { tenantInstance } from "./instance-access.js";

/** The instance's decisions, oldest first (NOT_FOUND, PERMISSION_DENIED). Works on standbys. */
export function getInstanceHistory(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: GetInstanceHistoryRequest,
): GetInstanceHistoryResponse {
  const row = tenantInstance(ctx.db, caller, req.instanceId);
  return {
    entries: listInstanceDecisions(ctx.db, row.id).map((d) => ({
      at: new Date(d.at),
      decision: d.decision,
      reason: d.reason,
      evidence: Object.fromEntries(
        Object.entries(d.evidence).map(([k, v]) => [
          k,
          typeof v === "string" ? v : JSON.stringify(v),
        ]),
      ),
    })),
  };
}
