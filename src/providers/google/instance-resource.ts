// SPDX-License-Identifier: Apache-2.0
/**
 * Builds the Compute Engine v1 `Instance` resource (REST JSON) of one nstance instance. The
 * template's `args` use the reference's PascalCase whitelist (`SourceImage`, `ServiceAccount`,
 * `NetworkTags`, `Preemptible`, …); nested values are given in the REST API's own camelCase form.
 */
import type { CreateInstanceRequest } from "../provider.js";
import { ProviderError } from "../provider.js";

/** Label keys of the association and annotation metadata (reference §6.1). */
export const GOOGLE_LABELS = {
  instanceId: "nstance-instance-id",
  managed: "nstance-managed",
  clusterId: "nstance-cluster-id",
  shard: "nstance-shard",
  tenant: "nstance-tenant",
  group: "nstance-group",
  template: "nstance-template",
  instanceKind: "nstance-instance-kind",
} as const;

/** `args` keys the google provider understands. */
export const GOOGLE_INSTANCE_ARGS = [
  "SourceImage",
  "DiskSizeGb",
  "DiskType",
  "ServiceAccount",
  "ServiceAccounts",
  "Labels",
  "NetworkTags",
  "Metadata",
  "Preemptible",
  "ProvisioningModel",
  "OnHostMaintenance",
  "AutomaticRestart",
  "MinCpuPlatform",
  "GuestAccelerators",
  "ShieldedInstanceConfig",
  "ConfidentialInstanceConfig",
  "ResourcePolicies",
] as const;

const ALLOWED = new Set<string>(GOOGLE_INSTANCE_ARGS);
const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** Where and how instances are built. */
export interface InstanceResourceSettings {
  project: string;
  region: string;
  zone: string;
  /** Boot image when `args.SourceImage` is absent. */
  sourceImage: string;
  /** Boot disk size when `args.DiskSizeGb` is absent. */
  diskSizeGb: number;
  /** Metadata key that carries the userdata (`startup-script` or `user-data`). */
  userDataKey: string;
}

/**
 * A label value as GCE accepts it: lowercase letters, digits, `_` and `-`, at most 63 characters
 * (other characters become `_`). Keys additionally must start with a letter.
 */
export function sanitizeLabel(value: string, isKey = false): string {
  let out = value
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "_")
    .slice(0, 63);
  if (isKey && !/^[a-z]/.test(out)) out = `x${out}`.slice(0, 63);
  return out;
}

/** `projects/p/regions/r/subnetworks/name` for a bare subnet name; full paths pass through. */
export function subnetworkPath(subnetId: string, project: string, region: string): string {
  if (subnetId.includes("/")) return subnetId.replace(/^https:\/\/[^/]+\/compute\/v1\//, "");
  return `projects/${project}/regions/${region}/subnetworks/${subnetId}`;
}

function invalid(message: string): ProviderError {
  return new ProviderError({
    provider: "google",
    op: "instances.insert",
    message,
    transient: false,
    code: "invalid_argument",
  });
}

function expect<T>(key: string, value: unknown, ok: (v: unknown) => boolean, what: string): T {
  if (!ok(value)) throw invalid(`args.${key} must be ${what}`);
  return value as T;
}

const isString = (v: unknown) => typeof v === "string";
const isBool = (v: unknown) => typeof v === "boolean";
const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown) => Array.isArray(v) && v.every(isString);

/** The REST `Instance` body for `instances.insert`. */
export function buildInstanceResource(
  req: CreateInstanceRequest,
  s: InstanceResourceSettings,
): Record<string, unknown> {
  const unknown = Object.keys(req.args).filter((k) => !ALLOWED.has(k));
  if (unknown.length > 0) {
    throw invalid(`unknown args ${unknown.join(", ")} (known: ${GOOGLE_INSTANCE_ARGS.join(", ")})`);
  }
  const args = req.args as Record<string, unknown>;
  const labels: Record<string, string> = {};
  const addLabel = (k: string, v: string): void => {
    const key = sanitizeLabel(k, true);
    // The nstance labels decide ownership: nothing from config may overwrite them.
    if (!key.startsWith("nstance-")) labels[key] = sanitizeLabel(v);
  };
  for (const [k, v] of Object.entries(req.tags)) addLabel(k, v);
  if (args.Labels !== undefined) {
    const extra = expect<Record<string, unknown>>("Labels", args.Labels, isObject, "an object");
    for (const [k, v] of Object.entries(extra)) addLabel(k, String(v));
  }
  const own: Array<[string, string]> = [
    [GOOGLE_LABELS.instanceId, req.instanceId],
    [GOOGLE_LABELS.managed, "true"],
    [GOOGLE_LABELS.clusterId, req.clusterId],
    [GOOGLE_LABELS.shard, req.shard],
    [GOOGLE_LABELS.tenant, req.tenant],
    [GOOGLE_LABELS.group, req.group],
    [GOOGLE_LABELS.template, req.template],
    [GOOGLE_LABELS.instanceKind, req.instanceKind],
  ];
  for (const [k, v] of own) if (v !== "") labels[k] = sanitizeLabel(v);

  const initializeParams: Record<string, unknown> = {
    sourceImage:
      args.SourceImage === undefined
        ? s.sourceImage
        : expect<string>("SourceImage", args.SourceImage, isString, "a string"),
    diskSizeGb: String(
      args.DiskSizeGb === undefined
        ? s.diskSizeGb
        : expect<number>("DiskSizeGb", args.DiskSizeGb, (v) => Number.isInteger(v), "an integer"),
    ),
  };
  if (args.DiskType !== undefined) {
    const t = expect<string>("DiskType", args.DiskType, isString, "a string");
    initializeParams.diskType = t.includes("/") ? t : `zones/${s.zone}/diskTypes/${t}`;
  }
  const metadataItems = [{ key: s.userDataKey, value: req.userData }];
  if (args.Metadata !== undefined) {
    const extra = expect<Record<string, unknown>>("Metadata", args.Metadata, isObject, "an object");
    for (const [key, value] of Object.entries(extra)) {
      if (key !== s.userDataKey) metadataItems.push({ key, value: String(value) });
    }
  }

  const body: Record<string, unknown> = {
    name: req.instanceId,
    machineType: `zones/${s.zone}/machineTypes/${req.instanceType}`,
    labels,
    networkInterfaces: [{ subnetwork: subnetworkPath(req.subnetId, s.project, s.region) }],
    disks: [{ boot: true, autoDelete: true, initializeParams }],
    metadata: { items: metadataItems },
  };
  if (args.NetworkTags !== undefined) {
    body.tags = {
      items: expect<string[]>("NetworkTags", args.NetworkTags, isStringArray, "a list of strings"),
    };
  }
  if (args.ServiceAccount !== undefined) {
    const email = expect<string>("ServiceAccount", args.ServiceAccount, isString, "an email");
    body.serviceAccounts = [{ email, scopes: [CLOUD_PLATFORM_SCOPE] }];
  }
  if (args.ServiceAccounts !== undefined) {
    body.serviceAccounts = expect("ServiceAccounts", args.ServiceAccounts, Array.isArray, "a list");
  }
  const scheduling: Record<string, unknown> = {};
  if (args.Preemptible !== undefined) {
    scheduling.preemptible = expect("Preemptible", args.Preemptible, isBool, "a boolean");
  }
  if (args.ProvisioningModel !== undefined) {
    scheduling.provisioningModel = expect(
      "ProvisioningModel",
      args.ProvisioningModel,
      isString,
      "a string",
    );
  }
  if (args.OnHostMaintenance !== undefined) {
    scheduling.onHostMaintenance = expect(
      "OnHostMaintenance",
      args.OnHostMaintenance,
      isString,
      "a string",
    );
  }
  if (args.AutomaticRestart !== undefined) {
    scheduling.automaticRestart = expect(
      "AutomaticRestart",
      args.AutomaticRestart,
      isBool,
      "a boolean",
    );
  }
  if (Object.keys(scheduling).length > 0) body.scheduling = scheduling;
  if (args.MinCpuPlatform !== undefined) {
    body.minCpuPlatform = expect("MinCpuPlatform", args.MinCpuPlatform, isString, "a string");
  }
  if (args.GuestAccelerators !== undefined) {
    body.guestAccelerators = expect(
      "GuestAccelerators",
      args.GuestAccelerators,
      Array.isArray,
      "a list",
    );
  }
  if (args.ShieldedInstanceConfig !== undefined) {
    body.shieldedInstanceConfig = expect(
      "ShieldedInstanceConfig",
      args.ShieldedInstanceConfig,
      isObject,
      "an object",
    );
  }
  if (args.ConfidentialInstanceConfig !== undefined) {
    body.confidentialInstanceConfig = expect(
      "ConfidentialInstanceConfig",
      args.ConfidentialInstanceConfig,
      isObject,
      "an object",
    );
  }
  if (args.ResourcePolicies !== undefined) {
    body.resourcePolicies = expect(
      "ResourcePolicies",
      args.ResourcePolicies,
      isStringArray,
      "a list of strings",
    );
  }
  return body;
}
