// SPDX-License-Identifier: Apache-2.0
/**
 * Reference checks of one group (template, subnet pool, load balancers, provider requirements),
 * shared by the static config validation and the merge of dynamic groups.
 */
import { suggest } from "./check-schema.js";
import { deepMerge } from "./deep-merge.js";
import type { PathProblem, PathSegment } from "./path-problem.js";
import type { JsonObject } from "./server-config.js";

/** What a group may refer to. */
export interface GroupContext {
  provider: string | undefined;
  templates: ReadonlyMap<
    string,
    {
      subnetPool?: string | undefined;
      instanceType?: string | undefined;
      args?: Readonly<JsonObject> | undefined;
    }
  >;
  subnetPools: ReadonlySet<string>;
  loadBalancers: ReadonlySet<string>;
  /** Pools dynamic groups may use; empty = any. */
  dynamicSubnetPools: readonly string[];
  defaultArgs: Readonly<JsonObject> | undefined;
}

/** The group fields the checks read (snake_case, as in both files). */
export interface GroupRefs {
  template?: string | undefined;
  subnet_pool?: string | undefined;
  instance_type?: string | undefined;
  args?: Readonly<JsonObject> | undefined;
  load_balancers?: readonly string[] | undefined;
}

/** Providers whose instances need an instance type. */
const NEEDS_INSTANCE_TYPE = new Set(["aws", "google"]);

/** Message for a reference to a missing name, with a "did you mean" hint. */
export function unknownName(what: string, name: string, known: Iterable<string>): string {
  const hint = suggest(name, known);
  return `unknown ${what} "${name}"${hint ? ` (did you mean "${hint}"?)` : ""}`;
}

/**
 * Checks the references of a group at `path`. `dynamic` groups (not in the static config) must
 * name a template and may only use `dynamicSubnetPools` when that list is non-empty.
 */
export function checkGroupRefs(
  ctx: GroupContext,
  g: GroupRefs,
  path: readonly PathSegment[],
  problems: PathProblem[],
  dynamic: boolean,
): void {
  const at = (field: PathSegment, ...rest: PathSegment[]): PathSegment[] => [
    ...path,
    field,
    ...rest,
  ];
  (g.load_balancers ?? []).forEach((lb, i) => {
    if (!ctx.loadBalancers.has(lb)) {
      problems.push({
        path: at("load_balancers", i),
        message: unknownName("load balancer", lb, ctx.loadBalancers),
      });
    }
  });
  if (g.subnet_pool !== undefined && !ctx.subnetPools.has(g.subnet_pool)) {
    problems.push({
      path: at("subnet_pool"),
      message: unknownName("subnet pool", g.subnet_pool, ctx.subnetPools),
    });
  }
  if (g.template === undefined) {
    if (dynamic)
      problems.push({
        path: at("template"),
        message: "is required for groups that are not in the static config",
      });
    return;
  }
  const tpl = ctx.templates.get(g.template);
  if (tpl === undefined) {
    problems.push({
      path: at("template"),
      message: unknownName("template", g.template, ctx.templates.keys()),
    });
    return;
  }
  // A pool inherited from the template is checked on the template itself, so it is not reported twice.
  const pool = g.subnet_pool ?? tpl.subnetPool;
  if (pool === undefined) {
    problems.push({
      path: at("subnet_pool"),
      message: `no subnet pool: set subnet_pool here or on template "${g.template}"`,
    });
  } else if (
    dynamic &&
    ctx.dynamicSubnetPools.length > 0 &&
    !ctx.dynamicSubnetPools.includes(pool)
  ) {
    problems.push({
      path: at("subnet_pool"),
      message: `subnet pool "${pool}" is not allowed for dynamic groups (shard.dynamic_subnet_pools: ${ctx.dynamicSubnetPools.join(", ")})`,
    });
  }
  if (
    ctx.provider !== undefined &&
    NEEDS_INSTANCE_TYPE.has(ctx.provider) &&
    (g.instance_type ?? tpl.instanceType) === undefined
  ) {
    problems.push({
      path: at("instance_type"),
      message: `is required for provider "${ctx.provider}": set instance_type here or on template "${g.template}"`,
    });
  }
  if (ctx.provider === "proxmox") {
    const args = deepMerge(ctx.defaultArgs, tpl.args, g.args);
    const vmid = args.TemplateVMID;
    const name = args.TemplateName;
    const hasVmid = typeof vmid === "number" && vmid !== 0;
    const hasName = typeof name === "string" && name !== "";
    if (typeof args.StoragePool !== "string" || args.StoragePool === "") {
      problems.push({
        path: at("args"),
        message: `StoragePool is required in args for provider "proxmox"`,
      });
    }
    if (hasVmid === hasName) {
      problems.push({
        path: at("args"),
        message: `exactly one of TemplateVMID and TemplateName is required in args for provider "proxmox"`,
      });
    }
  }
}
