// SPDX-License-Identifier: Apache-2.0
/**
 * Builds the EC2 RunInstances input of one nstance instance: the template's `args` are
 * RunInstancesInput fields (AWS's own names, e.g. `ImageId`, `SecurityGroupIds`,
 * `IamInstanceProfile`), nstance sets the rest and tags the instance `nstance:*`.
 */
import type { RunInstancesCommandInput, Tag, TagSpecification } from "@aws-sdk/client-ec2";
import type { CreateInstanceRequest } from "../provider.js";
import { ProviderError } from "../provider.js";

/** EC2 tag keys of the association and annotation metadata (reference §6.1). */
export const AWS_TAGS = {
  instanceId: "nstance:instance-id",
  managed: "nstance:managed",
  clusterId: "nstance:cluster-id",
  shard: "nstance:shard",
  tenant: "nstance:tenant",
  group: "nstance:group",
  template: "nstance:template",
  instanceKind: "nstance:instance-kind",
} as const;

/** RunInstances fields nstance sets itself; `args` may not contain them. */
export const AWS_RESERVED_ARGS = [
  "InstanceType",
  "SubnetId",
  "UserData",
  "MinCount",
  "MaxCount",
  "ClientToken",
  "DryRun",
] as const;

/** RunInstances fields `args` may set (the SDK's RunInstancesRequest minus the reserved ones). */
export const AWS_RUN_INSTANCES_ARGS = [
  "AdditionalInfo",
  "BlockDeviceMappings",
  "CapacityReservationSpecification",
  "CpuOptions",
  "CreditSpecification",
  "DisableApiStop",
  "DisableApiTermination",
  "EbsOptimized",
  "ElasticGpuSpecification",
  "ElasticInferenceAccelerators",
  "EnablePrimaryIpv6",
  "EnclaveOptions",
  "HibernationOptions",
  "IamInstanceProfile",
  "ImageId",
  "InstanceInitiatedShutdownBehavior",
  "InstanceMarketOptions",
  "Ipv6AddressCount",
  "Ipv6Addresses",
  "KernelId",
  "KeyName",
  "LaunchTemplate",
  "LicenseSpecifications",
  "MaintenanceOptions",
  "MetadataOptions",
  "Monitoring",
  "NetworkInterfaces",
  "NetworkPerformanceOptions",
  "Operator",
  "Placement",
  "PrivateDnsNameOptions",
  "PrivateIpAddress",
  "RamdiskId",
  "SecondaryInterfaces",
  "SecurityGroupIds",
  "SecurityGroups",
  "TagSpecifications",
] as const;

const ALLOWED = new Set<string>(AWS_RUN_INSTANCES_ARGS);
const RESERVED = new Set<string>(AWS_RESERVED_ARGS);

function invalid(message: string): ProviderError {
  return new ProviderError({
    provider: "aws",
    op: "RunInstances",
    message,
    transient: false,
    code: "invalid_argument",
  });
}

/**
 * The RunInstances input for a create request. Unknown or reserved `args` keys are errors (a
 * misspelt `SecurityGroupIds` silently ignored would launch into the wrong security group). The
 * instance ID doubles as the idempotency `ClientToken`, so an SDK retry cannot launch twice.
 */
export function buildRunInstancesInput(req: CreateInstanceRequest): RunInstancesCommandInput {
  const bad = Object.keys(req.args).filter((k) => !ALLOWED.has(k));
  if (bad.length > 0) {
    const reserved = bad.filter((k) => RESERVED.has(k));
    throw invalid(
      reserved.length > 0
        ? `args may not set ${reserved.join(", ")} (nstance sets them)`
        : `unknown RunInstances args ${bad.join(", ")}`,
    );
  }
  const args = structuredClone(req.args) as Record<string, unknown>;
  const nstanceTags: Tag[] = [
    { Key: AWS_TAGS.instanceId, Value: req.instanceId },
    { Key: AWS_TAGS.managed, Value: "true" },
    { Key: AWS_TAGS.clusterId, Value: req.clusterId },
    { Key: AWS_TAGS.shard, Value: req.shard },
    { Key: AWS_TAGS.tenant, Value: req.tenant },
    { Key: AWS_TAGS.group, Value: req.group },
    { Key: AWS_TAGS.template, Value: req.template },
    { Key: AWS_TAGS.instanceKind, Value: req.instanceKind },
  ].filter((t) => t.Value !== "");
  const tags = new Map<string, string>([
    ["Name", `${req.clusterId}-${req.group}-${req.instanceId}`],
  ]);
  const addTag = (key: string, value: string): void => {
    // The nstance tags decide ownership: nothing from config may overwrite them.
    if (!key.startsWith("nstance:")) tags.set(key, value);
  };
  for (const [k, v] of Object.entries(req.tags)) addTag(k, v);

  const specs: TagSpecification[] = [];
  if (args.TagSpecifications !== undefined) {
    if (!Array.isArray(args.TagSpecifications)) throw invalid("TagSpecifications must be a list");
    for (const spec of args.TagSpecifications as TagSpecification[]) {
      if (spec.ResourceType === "instance") {
        for (const t of spec.Tags ?? []) if (t.Key && t.Value !== undefined) addTag(t.Key, t.Value);
      } else {
        specs.push(spec);
      }
    }
  }
  const instanceTags = [...nstanceTags, ...[...tags].map(([Key, Value]): Tag => ({ Key, Value }))];
  specs.unshift({ ResourceType: "instance", Tags: instanceTags });

  const input: RunInstancesCommandInput = {
    ...(args as Partial<RunInstancesCommandInput>),
    InstanceType: req.instanceType as RunInstancesCommandInput["InstanceType"],
    MinCount: 1,
    MaxCount: 1,
    UserData: Buffer.from(req.userData, "utf8").toString("base64"),
    ClientToken: req.instanceId,
    TagSpecifications: specs,
  };
  // With explicit network interfaces EC2 wants the subnet on the primary interface instead.
  const nics = input.NetworkInterfaces;
  if (nics && nics.length > 0) {
    const primary = nics.find((n) => (n.DeviceIndex ?? 0) === 0) ?? nics[0]!;
    primary.SubnetId ??= req.subnetId;
  } else {
    input.SubnetId = req.subnetId;
  }
  return input;
}
