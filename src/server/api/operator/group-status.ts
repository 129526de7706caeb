// SPDX-License-Identifier: Apache-2.0
/** GroupStatus: an effective group as the Operator API shows it, with its current size. */
import { createHash } from "node:crypto";
import { canonicalJson } from "../../../config/canonical-json.js";
import type { EffectiveGroup } from "../../../config/server-config.js";
import type { Db } from "../../../db/database.js";
import { listActiveInstancesByGroup } from "../../../db/instances-table.js";
import type { GroupStatus } from "../../../protocol/gen/nstance/v1/operator.js";

/** The configuration fields a GroupStatus etag covers (runtime fields excluded). */
export interface GroupStatusConfig {
  key: string;
  tenant: string;
  template: string;
  size: number;
  instanceType: string;
  subnetPool: string;
  vars: Readonly<Record<string, string>>;
  isStatic: boolean;
}

/**
 * md5 hex of the JSON of {instance_type, is_static, key, size, subnet_pool, template, tenant, vars}
 * with keys sorted (reference §3.3): changes exactly when the group's configuration does.
 */
export function groupStatusEtag(c: GroupStatusConfig): string {
  const json = canonicalJson({
    instance_type: c.instanceType,
    is_static: c.isStatic,
    key: c.key,
    size: c.size,
    subnet_pool: c.subnetPool,
    template: c.template,
    tenant: c.tenant,
    vars: c.vars,
  });
  return createHash("md5").update(json).digest("hex");
}

/**
 * The GroupStatus of an effective group; actual_size and provider_ids count the active managed
 * (not on-demand) instances that have a provider ID, IDs sorted.
 */
export function toGroupStatus(db: Db, g: EffectiveGroup): GroupStatus {
  const providerIds = listActiveInstancesByGroup(db, g.tenant, g.key)
    .filter((i) => !i.onDemand && i.providerId !== undefined)
    .map((i) => i.providerId!)
    .sort();
  const config: GroupStatusConfig = {
    key: g.key,
    tenant: g.tenant,
    template: g.template,
    size: g.size,
    instanceType: g.instanceType ?? "",
    subnetPool: g.subnetPool,
    vars: { ...g.vars },
    isStatic: g.isStatic,
  };
  return {
    ...config,
    vars: { ...config.vars },
    etag: groupStatusEtag(config),
    actualSize: providerIds.length,
    providerIds,
  };
}
