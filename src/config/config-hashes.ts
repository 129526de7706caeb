// SPDX-License-Identifier: Apache-2.0
/**
 * Config drift hashes (reference §5.14). The runtime hash covers what can be pushed to running
 * instances (vars, files); the infra hash covers what needs a new instance (args, instance type,
 * subnet pool, userdata, kind, arch): a mismatch makes the reconciler rotate instances.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";
import type { Arch, FileConfig, JsonObject, UserdataConfig } from "./server-config.js";

/** What the runtime hash covers. */
export interface RuntimeHashInput {
  vars: Readonly<Record<string, string>>;
  files: Readonly<Record<string, FileConfig>>;
}

/** What the infra hash covers. */
export interface InfraHashInput {
  args: Readonly<JsonObject>;
  instanceType?: string;
  subnetPool: string;
  userdata?: UserdataConfig;
  kind: string;
  arch: Arch;
}

/** `sha256:` + hex SHA-256 of the canonical JSON of `value`. */
export function sha256Hash(value: unknown): string {
  return `sha256:${createHash("sha256").update(canonicalJson(value)).digest("hex")}`;
}

/** Hash of {vars, files}. */
export function runtimeHash(input: RuntimeHashInput): string {
  return sha256Hash({ vars: input.vars, files: input.files });
}

/** Hash of {args, instance_type, subnet_pool, userdata (omitted when absent), kind, arch}. */
export function infraHash(input: InfraHashInput): string {
  return sha256Hash({
    args: input.args,
    instance_type: input.instanceType ?? "",
    subnet_pool: input.subnetPool,
    userdata: input.userdata,
    kind: input.kind,
    arch: input.arch,
  });
}
