// SPDX-License-Identifier: Apache-2.0
/**
 * SleepTenant, WakeTenant, GetTenantStatus. Tenant sleep is out of this server's scope
 * (docs/decisions.md), so every tenant is always awake: waking is a no-op and sleeping is
 * UNIMPLEMENTED. The tenant checks are real: a caller may only name its own tenant.
 */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  GetTenantStatusRequest,
  GetTenantStatusResponse,
  SleepTenantRequest,
  SleepTenantResponse,
  WakeTenantRequest,
  WakeTenantResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import {
  TenantSleepStatus,
  WakeTenantResponse_Result,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { UnimplementedError } from "../handler.js";
import { requireLeader } from "../require-leader.js";

/** Throws unless `tenant` is the caller's: empty is INVALID_ARGUMENT, another PERMISSION_DENIED. */
export function requireOwnTenant(caller: ClientIdentity, tenant: string): void {
  if (tenant === "") throw new NstanceError("invalid_argument", "tenant is required");
  if (tenant !== caller.tenant) {
    throw new NstanceError(
      "permission_denied",
      `the client certificate is for tenant ${caller.tenant}, not ${tenant}`,
    );
  }
}

/** Leader only; tenant-checked; UNIMPLEMENTED (tenant sleep is not supported). */
export function sleepTenant(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: SleepTenantRequest,
): Promise<SleepTenantResponse> {
  requireLeader(ctx.leadership);
  requireOwnTenant(caller, req.tenant);
  throw new UnimplementedError("tenant sleep is not supported by this server");
}

/** Leader only; tenant-checked; the tenant is always awake. A listener-scoped wake is FAILED_PRECONDITION. */
export function wakeTenant(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: WakeTenantRequest,
): WakeTenantResponse {
  requireLeader(ctx.leadership);
  requireOwnTenant(caller, req.tenant);
  if (req.listener !== undefined && req.listener !== "") {
    throw new NstanceError("precondition_failed", "a listener-scoped wake is for the wake proxy");
  }
  return {
    result: WakeTenantResponse_Result.RESULT_ALREADY_AWAKE,
    status: TenantSleepStatus.TENANT_SLEEP_STATUS_AWAKE,
  };
}

/** Tenant-checked; always awake, no listeners. Works on standbys. */
export function getTenantStatus(
  caller: ClientIdentity,
  req: GetTenantStatusRequest,
): GetTenantStatusResponse {
  requireOwnTenant(caller, req.tenant);
  return { status: TenantSleepStatus.TENANT_SLEEP_STATUS_AWAKE, listeners: [] };
}
