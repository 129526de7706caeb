// SPDX-License-Identifier: Apache-2.0
/**
 * The `aws` provider: EC2 instances through `@aws-sdk/client-ec2` (RunInstances, TerminateInstances,
 * DescribeInstances, DescribeSubnets, ENI attach/detach for the leader network) and ELBv2 target
 * groups through `@aws-sdk/client-elastic-load-balancing-v2`. Loaded only when chosen.
 */
import {
  AttachNetworkInterfaceCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DetachNetworkInterfaceCommand,
  EC2Client,
  type EC2ClientConfig,
  type Instance,
  type NetworkInterface,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DeregisterTargetsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  type ElasticLoadBalancingV2ClientConfig,
  RegisterTargetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { isAbortError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { silentLogger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import {
  type CreateInstanceRequest,
  type CreateInstanceResult,
  type DeleteOutcome,
  type InstanceStatus,
  isTransientHttpStatus,
  type LbListRequest,
  type LbTargetGroup,
  type LbTargetRequest,
  type LbTargetState,
  type LeaderNetwork,
  type ListInstancesRequest,
  type Provider,
  ProviderError,
  type ProviderStatus,
} from "../provider.js";
import { AWS_TAGS, buildRunInstancesInput } from "./run-instances-input.js";

/** A subnet has capacity when it has more free IPs than this (reference §5.13). */
export const DEFAULT_AWS_MIN_FREE_IPS = 10;
/** Interval between DescribeNetworkInterfaces polls while an ENI attaches or detaches. */
export const DEFAULT_AWS_ENI_POLL_INTERVAL_MS = 2_000;
/** How long an ENI attach or detach may take. */
export const DEFAULT_AWS_ENI_WAIT_TIMEOUT_MS = 120_000;
/** DescribeInstances page size (the API maximum). */
export const DEFAULT_AWS_LIST_PAGE_SIZE = 1000;

/** Instance states listInstances asks for: terminated VMs stay visible for an hour, unwanted. */
const LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"];

/** Error codes worth retrying besides 5xx/429 (throttling and temporary capacity). */
const TRANSIENT_CODES = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "InsufficientInstanceCapacity",
  "InsufficientAddressCapacity",
  "ServiceUnavailable",
  "Unavailable",
  "InternalError",
  "IdempotentParameterMismatch",
]);

/** Options for {@link AwsProvider}. */
export interface AwsProviderOptions {
  region: string;
  /** The shard's availability zone (informational; instances land where their subnet is). */
  zone?: string;
  /** Custom EC2 endpoint (e.g. a VPC endpoint); AWS by default. */
  ec2Endpoint?: string;
  /** Custom ELBv2 endpoint. */
  elbEndpoint?: string;
  /** Static credentials; without them the SDK's default chain (env, profile, IMDS …) is used. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** SDK attempts per call (SDK default 3). RunInstances is idempotent through ClientToken. */
  maxAttempts?: number;
  /** SDK transport override, used by tests to answer at the HTTP level. */
  requestHandler?: EC2ClientConfig["requestHandler"];
  /** See {@link DEFAULT_AWS_MIN_FREE_IPS}. */
  minFreeIps?: number;
  /** See {@link DEFAULT_AWS_ENI_POLL_INTERVAL_MS}. */
  eniPollIntervalMs?: number;
  /** See {@link DEFAULT_AWS_ENI_WAIT_TIMEOUT_MS}. */
  eniWaitTimeoutMs?: number;
  /** See {@link DEFAULT_AWS_LIST_PAGE_SIZE}. */
  listPageSize?: number;
  logger?: Logger;
}

/** EC2 + ELBv2; see the file comment. */
export class AwsProvider implements Provider {
  readonly kind = "aws" as const;
  readonly #ec2: EC2Client;
  readonly #elb: ElasticLoadBalancingV2Client;
  readonly #region: string;
  readonly #zone: string | undefined;
  readonly #minFreeIps: number;
  readonly #eniPollMs: number;
  readonly #eniTimeoutMs: number;
  readonly #pageSize: number;
  readonly #logger: Logger;
  #closed = false;

  constructor(opts: AwsProviderOptions) {
    if (!opts.region) throw new TypeError("region is required");
    this.#region = opts.region;
    this.#zone = opts.zone;
    this.#minFreeIps = opts.minFreeIps ?? DEFAULT_AWS_MIN_FREE_IPS;
    this.#eniPollMs = opts.eniPollIntervalMs ?? DEFAULT_AWS_ENI_POLL_INTERVAL_MS;
    this.#eniTimeoutMs = opts.eniWaitTimeoutMs ?? DEFAULT_AWS_ENI_WAIT_TIMEOUT_MS;
    this.#pageSize = opts.listPageSize ?? DEFAULT_AWS_LIST_PAGE_SIZE;
    this.#logger = opts.logger ?? silentLogger;
    const common = {
      region: opts.region,
      credentials: opts.credentials,
      maxAttempts: opts.maxAttempts,
      requestHandler: opts.requestHandler,
    };
    this.#ec2 = new EC2Client({ ...common, endpoint: opts.ec2Endpoint });
    this.#elb = new ElasticLoadBalancingV2Client({
      ...common,
      requestHandler: opts.requestHandler as ElasticLoadBalancingV2ClientConfig["requestHandler"],
      endpoint: opts.elbEndpoint,
    });
  }

  async createInstance(
    req: CreateInstanceRequest,
    signal?: AbortSignal,
  ): Promise<CreateInstanceResult> {
    const input = buildRunInstancesInput(req);
    this.#logger.info("Creating EC2 instance", {
      instance_id: req.instanceId,
      instance_type: req.instanceType,
      subnet_id: req.subnetId,
    });
    const out = await this.#call("RunInstances", signal, (abortSignal) =>
      this.#ec2.send(new RunInstancesCommand(input), { abortSignal }),
    );
    const vm = out.Instances?.[0];
    if (!vm?.InstanceId) {
      throw new ProviderError({
        provider: "aws",
        op: "RunInstances",
        message: "no instance in the response",
        transient: true,
      });
    }
    return {
      instanceId: req.instanceId,
      providerInstanceId: vm.InstanceId,
      status: mapEc2State(vm.State?.Name),
      privateIpv4: vm.PrivateIpAddress || undefined,
      privateIpv6: vm.Ipv6Address || undefined,
      hostname: hostnameOf(vm.PrivateDnsName),
      launchedAt: vm.LaunchTime?.getTime() ?? Date.now(),
    };
  }

  async deleteInstance(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<DeleteOutcome> {
    // A record written before a crash may lack the EC2 ID: find the VM by its nstance tag.
    const ec2Id = providerInstanceId || (await this.#findByTag(instanceId, signal))?.InstanceId;
    if (!ec2Id) return "not_found";
    try {
      await this.#call("TerminateInstances", signal, (abortSignal) =>
        this.#ec2.send(new TerminateInstancesCommand({ InstanceIds: [ec2Id] }), {
          abortSignal,
        }),
      );
    } catch (err) {
      if (isNotFound(err)) return "not_found";
      throw err;
    }
    this.#logger.info("EC2 instance termination started", {
      instance_id: instanceId,
      provider_instance_id: ec2Id,
    });
    return "deleted";
  }

  async getInstanceStatus(
    instanceId: string,
    providerInstanceId: string,
    signal?: AbortSignal,
  ): Promise<InstanceStatus | undefined> {
    if (!providerInstanceId) {
      const vm = await this.#findByTag(instanceId, signal);
      return vm ? this.#toStatus(vm) : undefined;
    }
    let out: DescribeInstancesCommandOutput;
    try {
      out = await this.#call("DescribeInstances", signal, (abortSignal) =>
        this.#ec2.send(new DescribeInstancesCommand({ InstanceIds: [providerInstanceId] }), {
          abortSignal,
        }),
      );
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    for (const r of out.Reservations ?? []) {
      for (const vm of r.Instances ?? []) {
        if (vm.InstanceId !== providerInstanceId) continue;
        const status = this.#toStatus(vm);
        if (status.instanceId && instanceId && status.instanceId !== instanceId) {
          this.#logger.warn("EC2 instance carries another nstance instance ID", {
            provider_instance_id: providerInstanceId,
            instance_id: instanceId,
            tagged_instance_id: status.instanceId,
          });
          return undefined;
        }
        return status;
      }
    }
    return undefined;
  }

  async listInstances(req: ListInstancesRequest, signal?: AbortSignal): Promise<InstanceStatus[]> {
    const filters = [
      { Name: `tag:${AWS_TAGS.managed}`, Values: ["true"] },
      { Name: `tag:${AWS_TAGS.clusterId}`, Values: [req.clusterId] },
      { Name: `tag:${AWS_TAGS.shard}`, Values: [req.shard] },
      { Name: "instance-state-name", Values: LIVE_STATES },
    ];
    const out: InstanceStatus[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.#call("DescribeInstances", signal, (abortSignal) =>
        this.#ec2.send(
          new DescribeInstancesCommand({
            Filters: filters,
            MaxResults: this.#pageSize,
            NextToken: nextToken,
          }),
          { abortSignal },
        ),
      );
      for (const r of page.Reservations ?? []) {
        for (const vm of r.Instances ?? []) out.push(this.#toStatus(vm));
      }
      nextToken = page.NextToken || undefined;
    } while (nextToken);
    return out;
  }

  async checkSubnetCapacity(subnetId: string, signal?: AbortSignal): Promise<boolean> {
    const out = await this.#call("DescribeSubnets", signal, (abortSignal) =>
      this.#ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }), { abortSignal }),
    );
    const subnet = out.Subnets?.find((s) => s.SubnetId === subnetId);
    if (!subnet) {
      throw new ProviderError({
        provider: "aws",
        op: "DescribeSubnets",
        message: `subnet ${subnetId} not found`,
        transient: false,
        code: "not_found",
      });
    }
    const free = subnet.AvailableIpAddressCount ?? 0;
    this.#logger.debug("Checked subnet capacity", { subnet_id: subnetId, free_ips: free });
    return free > this.#minFreeIps;
  }

  /** Attaches the leader ENI to the instance (moving it from another instance first). */
  async assignLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    const eniId = requireEni(network, "AttachNetworkInterface");
    const eni = await this.#describeEni(eniId, signal);
    const attached = eni.Attachment?.InstanceId;
    if (attached === providerInstanceId) return;
    if (eni.Attachment?.AttachmentId) {
      this.#logger.info("Detaching leader ENI from the previous instance", {
        eni_id: eniId,
        previous_instance_id: attached,
      });
      const attachmentId = eni.Attachment.AttachmentId;
      await this.#call("DetachNetworkInterface", signal, (abortSignal) =>
        this.#ec2.send(
          // Forced: the previous leader may be dead; failover must not wait for it.
          new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId, Force: true }),
          { abortSignal },
        ),
      );
      await this.#waitEni(eniId, "available", signal);
    }
    await this.#call("AttachNetworkInterface", signal, (abortSignal) =>
      this.#ec2.send(
        new AttachNetworkInterfaceCommand({
          NetworkInterfaceId: eniId,
          InstanceId: providerInstanceId,
          DeviceIndex: 1,
        }),
        { abortSignal },
      ),
    );
    await this.#waitEni(eniId, "in-use", signal);
    this.#logger.info("Leader ENI attached", {
      eni_id: eniId,
      provider_instance_id: providerInstanceId,
    });
  }

  /** Detaches the leader ENI if this instance holds it. */
  async releaseLeaderNetwork(
    providerInstanceId: string,
    network: LeaderNetwork,
    signal?: AbortSignal,
  ): Promise<void> {
    const eniId = requireEni(network, "DetachNetworkInterface");
    const eni = await this.#describeEni(eniId, signal);
    const attachmentId = eni.Attachment?.AttachmentId;
    if (!attachmentId || eni.Attachment?.InstanceId !== providerInstanceId) return;
    await this.#call("DetachNetworkInterface", signal, (abortSignal) =>
      this.#ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }), {
        abortSignal,
      }),
    );
    await this.#waitEni(eniId, "available", signal);
  }

  async registerWithLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    for (const tg of requireTargetGroups(req, "RegisterTargets")) {
      await this.#call("RegisterTargets", signal, (abortSignal) =>
        this.#elb.send(
          new RegisterTargetsCommand({
            TargetGroupArn: tg.arn,
            Targets: [{ Id: req.providerInstanceId, Port: targetPort(tg, req.wakeProxy) }],
          }),
          { abortSignal },
        ),
      );
    }
  }

  /** Deregisters from every target group, trying all before reporting the first failure. */
  async deregisterFromLb(req: LbTargetRequest, signal?: AbortSignal): Promise<void> {
    let failure: Error | undefined;
    for (const tg of requireTargetGroups(req, "DeregisterTargets")) {
      try {
        await this.#call("DeregisterTargets", signal, (abortSignal) =>
          this.#elb.send(
            new DeregisterTargetsCommand({
              TargetGroupArn: tg.arn,
              Targets: [{ Id: req.providerInstanceId, Port: targetPort(tg, req.wakeProxy) }],
            }),
            { abortSignal },
          ),
        );
      } catch (err) {
        failure ??= err instanceof Error ? err : new Error(String(err));
      }
    }
    if (failure !== undefined) throw failure;
  }

  async getLbTargetState(req: LbTargetRequest, signal?: AbortSignal): Promise<LbTargetState> {
    const groups = requireTargetGroups(req, "DescribeTargetHealth");
    let registered = 0;
    let healthy = 0;
    for (const tg of groups) {
      const out = await this.#call("DescribeTargetHealth", signal, (abortSignal) =>
        this.#elb.send(
          new DescribeTargetHealthCommand({
            TargetGroupArn: tg.arn,
            Targets: [{ Id: req.providerInstanceId, Port: targetPort(tg, req.wakeProxy) }],
          }),
          { abortSignal },
        ),
      );
      const health = out.TargetHealthDescriptions?.[0]?.TargetHealth;
      if (!health || health.Reason === "Target.NotRegistered" || health.State === "unused") {
        continue;
      }
      registered++;
      if (health.State === "draining") return "draining";
      if (health.State === "healthy") healthy++;
    }
    if (registered === 0) return "deregistered";
    if (registered < groups.length) return "partially_registered";
    return healthy === groups.length ? "healthy" : "registered";
  }

  async listLbInstances(req: LbListRequest, signal?: AbortSignal): Promise<string[]> {
    const seen = new Set<string>();
    for (const tg of requireTargetGroups(req, "DescribeTargetHealth")) {
      const out = await this.#call("DescribeTargetHealth", signal, (abortSignal) =>
        this.#elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: tg.arn }), {
          abortSignal,
        }),
      );
      for (const d of out.TargetHealthDescriptions ?? []) if (d.Target?.Id) seen.add(d.Target.Id);
    }
    return [...seen];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#ec2.destroy();
    this.#elb.destroy();
  }

  // ---- internals -----------------------------------------------------------------------------

  /** The live VM tagged with an nstance instance ID (for records without an EC2 ID). */
  async #findByTag(
    instanceId: string,
    signal: AbortSignal | undefined,
  ): Promise<Instance | undefined> {
    if (!instanceId) return undefined;
    const out = await this.#call("DescribeInstances", signal, (abortSignal) =>
      this.#ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: `tag:${AWS_TAGS.instanceId}`, Values: [instanceId] },
            { Name: "instance-state-name", Values: LIVE_STATES },
          ],
        }),
        { abortSignal },
      ),
    );
    return out.Reservations?.flatMap((r) => r.Instances ?? [])[0];
  }

  async #describeEni(eniId: string, signal: AbortSignal | undefined): Promise<NetworkInterface> {
    const out = await this.#call("DescribeNetworkInterfaces", signal, (abortSignal) =>
      this.#ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eniId] }), {
        abortSignal,
      }),
    );
    const eni = out.NetworkInterfaces?.[0];
    if (!eni) {
      throw new ProviderError({
        provider: "aws",
        op: "DescribeNetworkInterfaces",
        message: `ENI ${eniId} not found`,
        transient: false,
        code: "not_found",
      });
    }
    return eni;
  }

  async #waitEni(
    eniId: string,
    want: "available" | "in-use",
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const deadline = Date.now() + this.#eniTimeoutMs;
    for (;;) {
      await sleep(this.#eniPollMs, signal);
      const eni = await this.#describeEni(eniId, signal);
      if (eni.Status === want) return;
      if (Date.now() >= deadline) {
        throw new ProviderError({
          provider: "aws",
          op: "DescribeNetworkInterfaces",
          message: `ENI ${eniId} still ${eni.Status ?? "unknown"} after ${this.#eniTimeoutMs} ms (want ${want})`,
          transient: true,
          code: "deadline_exceeded",
        });
      }
    }
  }

  async #call<T>(
    op: string,
    signal: AbortSignal | undefined,
    fn: (abortSignal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    signal?.throwIfAborted();
    try {
      return await fn(signal);
    } catch (err) {
      if (isAbortError(err) && signal?.aborted) throw signal.reason;
      throw toProviderError(op, err);
    }
  }

  #toStatus(vm: Instance): InstanceStatus {
    const tags: Record<string, string> = {};
    for (const t of vm.Tags ?? []) if (t.Key !== undefined) tags[t.Key] = t.Value ?? "";
    return {
      instanceId: tags[AWS_TAGS.instanceId] ?? "",
      providerInstanceId: vm.InstanceId ?? "",
      status: mapEc2State(vm.State?.Name),
      instanceType: vm.InstanceType,
      privateIpv4: vm.PrivateIpAddress || undefined,
      privateIpv6: vm.Ipv6Address || undefined,
      hostname: hostnameOf(vm.PrivateDnsName),
      launchedAt: vm.LaunchTime?.getTime(),
      region: this.#region,
      zone: vm.Placement?.AvailabilityZone ?? this.#zone,
      clusterId: tags[AWS_TAGS.clusterId],
      shard: tags[AWS_TAGS.shard],
      tenant: tags[AWS_TAGS.tenant],
      group: tags[AWS_TAGS.group],
      template: tags[AWS_TAGS.template],
      instanceKind: tags[AWS_TAGS.instanceKind],
      tags,
    };
  }
}

/** EC2 instance state → normalised status. */
export function mapEc2State(state: string | undefined): ProviderStatus {
  switch (state) {
    case "pending":
      return "pending";
    case "running":
      return "running";
    case "stopping":
      return "stopping";
    case "stopped":
      return "stopped";
    case "shutting-down":
      return "deleting";
    case "terminated":
      return "deleted";
    default:
      return "unknown";
  }
}

/** `ip-10-0-1-5.us-west-2.compute.internal` → `ip-10-0-1-5`. */
function hostnameOf(privateDnsName: string | undefined): string | undefined {
  return privateDnsName ? privateDnsName.split(".")[0] : undefined;
}

function targetPort(tg: LbTargetGroup, wakeProxy: boolean | undefined): number {
  return wakeProxy ? tg.proxyPort : tg.targetPort;
}

function requireTargetGroups(
  req: { lbConfig: { targetGroups: readonly LbTargetGroup[] } },
  op: string,
) {
  if (req.lbConfig.targetGroups.length === 0) {
    throw new ProviderError({
      provider: "aws",
      op,
      message: "the load balancer has no target_groups",
      transient: false,
      code: "invalid_argument",
    });
  }
  return req.lbConfig.targetGroups;
}

function requireEni(network: LeaderNetwork, op: string): string {
  if (!network.interfaceId) {
    throw new ProviderError({
      provider: "aws",
      op,
      message: "the leader network needs an ENI ID (interface_id)",
      transient: false,
      code: "invalid_argument",
    });
  }
  return network.interfaceId;
}

function errorCode(err: unknown): string | undefined {
  const e = err as { name?: unknown; Code?: unknown };
  return typeof e.Code === "string" ? e.Code : typeof e.name === "string" ? e.name : undefined;
}

function isNotFound(err: unknown): boolean {
  const cause = err instanceof ProviderError ? err.cause : err;
  const code = errorCode(cause);
  return code === "InvalidInstanceID.NotFound";
}

/** An SDK error as a ProviderError, transient for throttling, 5xx and network failures. */
function toProviderError(op: string, err: unknown): ProviderError {
  const e = err as {
    $metadata?: { httpStatusCode?: number };
    $retryable?: unknown;
    message?: string;
  };
  const status = e.$metadata?.httpStatusCode;
  const code = errorCode(err);
  const transient =
    e.$retryable !== undefined ||
    status === undefined ||
    isTransientHttpStatus(status) ||
    (code !== undefined && TRANSIENT_CODES.has(code));
  return new ProviderError({
    provider: "aws",
    op,
    message: `${code ?? "error"}: ${e.message ?? String(err)}`,
    transient,
    code: code?.endsWith(".NotFound") ? "not_found" : undefined,
    cause: err,
  });
}
