// SPDX-License-Identifier: Apache-2.0
/**
 * The data file and certificate templates see (reference §5.15): `.Instance` (addresses and
 * hostname as the agent reported them at registration), `.Cluster`, `.Server`, `.Vars`.
 */
import type { EffectiveGroup } from "../../config/server-config.js";
import type { InstanceRow } from "../../db/instances-table.js";
import type { TemplateRoot } from "./render-template.js";

/** The `.` of a file template. */
export interface TemplateData extends TemplateRoot {
  readonly Instance: {
    readonly ID: string;
    readonly Kind: string;
    readonly Arch: string;
    readonly Type: string;
    readonly Hostname: string;
    /** The hostname as reported: agents report one name, fully qualified where the VM has one. */
    readonly FQDN: string;
    readonly IP4: string;
    readonly IP6: string;
  };
  readonly Cluster: { readonly ID: string; readonly CACert: string };
  readonly Server: { readonly Shard: string };
  readonly Vars: Readonly<Record<string, string>>;
}

/** Builds the template data of one instance of `group`. */
export function templateDataFor(o: {
  row: Pick<InstanceRow, "id" | "instanceType" | "hostname" | "ip4" | "ip6">;
  group: Pick<EffectiveGroup, "kind" | "arch" | "instanceType" | "vars">;
  clusterId: string;
  caCertPem: string;
  shard: string;
}): TemplateData {
  const hostname = o.row.hostname ?? "";
  return {
    Instance: {
      ID: o.row.id,
      Kind: o.group.kind,
      Arch: o.group.arch,
      Type: o.row.instanceType ?? o.group.instanceType ?? "",
      Hostname: hostname,
      FQDN: hostname,
      IP4: o.row.ip4 ?? "",
      IP6: o.row.ip6 ?? "",
    },
    Cluster: { ID: o.clusterId, CACert: o.caCertPem },
    Server: { Shard: o.shard },
    Vars: o.group.vars,
  };
}
