// SPDX-License-Identifier: Apache-2.0
/**
 * Creates and deletes instances (reference §5.2, §5.6) in an order that survives a crash at any
 * step:
 *
 * create: mint the registration nonce → render userdata and args → pick a subnet with room →
 *   insert the SQLite row (the nonce's single-use gate) → write the storage record `pending` →
 *   provider create → record the provider's handle (row, then record).
 * delete: deregister from load balancers → provider delete (already gone is fine) → record
 *   `deleting` → soft-delete the row.
 *
 * A crash before the provider call leaves a row/record without a provider ID, which garbage
 * collection reaps after the registration timeout; a crash after it leaves a VM that cache rebuild
 * finds by its instance ID. Every provider mutation and storage write checks the leadership term
 * right before it is sent and is dropped (StaleTermError) once the term has moved on.
 */
import type { KeyObject } from "node:crypto";
import type { EffectiveGroup } from "../../config/server-config.js";
import type { Db } from "../../db/database.js";
import { recordDecision } from "../../db/decisions-table.js";
import {
  listInstanceLoadBalancers,
  markInstanceDeleted,
  recordProviderCreate,
  setReplacedBy,
} from "../../db/instance-lifecycle.js";
import { getInstance, insertPendingInstance } from "../../db/instances-table.js";
import type { TermFence } from "../../election/term-fence.js";
import { mintNonceJwt } from "../../pki/nonce-jwt.js";
import { isInstanceId, newInstanceId, parseInstanceId } from "../../providers/instance-id.js";
import type { CreateInstanceRequest, Provider } from "../../providers/provider.js";
import type { GroupSource } from "../../reconcile/group-source.js";
import type {
  ExecutorCreated,
  ExecutorCreateOptions,
  ExecutorDeleteOptions,
  ExecutorDeleteOutcome,
  InstanceExecutor,
} from "../../reconcile/instance-executor.js";
import { errorMessage, isAbortError, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { instanceRecordFromRow, instanceRecordKey } from "../api/registration/instance-record.js";
import { updateJsonObject } from "../api/update-json-object.js";
import { pickSubnet } from "./pick-subnet.js";
import { renderStrings, renderTemplate, type TemplateData } from "./render-template.js";
import { type FetchBytes, fetchBytes, resolveUserdata } from "./resolve-userdata.js";
import { pendingRecord } from "./stored-instance-record.js";

/** The shard's advertised addresses that new agents are given. */
export interface ShardAddresses {
  /** `host:port` of the Registration service. */
  registration: string;
  /** `host:port` of the Agent service. */
  agent: string;
  /** `host:port` of the Operator service (templates may use it). */
  operator?: string;
}

/** The parts of the cluster identity creates need (a ClusterIdentity satisfies it). */
export interface NonceIdentity {
  /** Signs registration nonces. */
  nonceSigningKey: KeyObject;
  /** The CA certificate agents trust (PEM). */
  ca: { certPem: string };
}

/** Options for {@link InstanceManager}. */
export interface InstanceManagerOptions {
  clusterId: string;
  shard: string;
  /** Shard key prefix (`shard/{shard}/`): records live under `{prefix}instance/`. */
  prefix: string;
  db: Db;
  /** The bucket (unscoped). */
  storage: ObjectStorage;
  provider: Provider;
  identity: NonceIdentity;
  /** The configuration in force (ConfigStore). */
  groups: Pick<GroupSource, "current">;
  /** Fences provider calls and storage writes by leadership term. */
  fence: TermFence;
  advertise: ShardAddresses;
  logger: Logger;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Fetches `url` userdata. Defaults to the global fetch. */
  fetchUserdata?: FetchBytes;
}

/** Environment variables the `local` provider hands to agent processes. */
export const AGENT_ENV_REGISTRATION_ADDR = "NSTANCE_SERVER_REGISTRATION_ADDR";
/** See {@link AGENT_ENV_REGISTRATION_ADDR}. */
export const AGENT_ENV_AGENT_ADDR = "NSTANCE_SERVER_AGENT_ADDR";
/**
 * The report interval local agents get: `shard.health_check_interval`, so the missed-report rules
 * (seed 003) judge them by the interval they really report at.
 */
export const AGENT_ENV_METRICS_INTERVAL = "NSTANCE_METRICS_INTERVAL";

/** Creates and deletes instances under a leadership term; see the file comment. */
export class InstanceManager implements InstanceExecutor {
  readonly #o: InstanceManagerOptions;
  readonly #now: () => number;
  readonly #logger: Logger;

  constructor(opts: InstanceManagerOptions) {
    for (const k of ["db", "storage", "provider", "identity", "groups", "fence"] as const) {
      if (!opts[k]) throw new TypeError(`${k} is required`);
    }
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger.child({ subsystem: "instances" });
  }

  /**
   * Creates one instance of group `tenant/groupKey`. Throws NstanceError `not_found` for an unknown
   * group, `invalid_argument` for a bad ID, pool or template, NoSubnetCapacityError
   * (`resource_exhausted`) when no subnet has room, StaleTermError (`aborted`) when the term moved
   * on, and what the provider throws. A failure after the row was written marks it deleted.
   */
  async create(
    tenant: string,
    groupKey: string,
    opts: ExecutorCreateOptions,
    term: number,
    signal?: AbortSignal,
  ): Promise<ExecutorCreated> {
    const { config, effective } = this.#o.groups.current();
    const group = effective.groups.find((g) => g.tenant === tenant && g.key === groupKey);
    if (!group) {
      throw new NstanceError("not_found", `group ${groupKey} does not exist in tenant ${tenant}`);
    }
    const id = this.#instanceId(group, opts.instanceId);
    const instanceType = opts.overrides?.instanceType || group.instanceType || "";
    const pool = opts.overrides?.subnetPool || group.subnetPool;
    const subnets = config.shard.subnetPools[pool];
    if (!subnets) throw new NstanceError("invalid_argument", `subnet pool ${pool} does not exist`);
    const vars = { ...group.vars, ...opts.overrides?.vars };
    const onDemand = opts.onDemand ?? false;
    const now = this.#now();

    const nonce = await mintNonceJwt(
      {
        subject: id,
        kind: "agent",
        clusterId: this.#o.clusterId,
        shard: this.#o.shard,
        group: groupKey,
        onDemand,
        tenant,
        configHash: group.runtimeHash,
      },
      {
        signingKey: this.#o.identity.nonceSigningKey,
        ttlMs: config.shard.garbageCollection.registrationTimeoutMs,
        now: new Date(now),
      },
    );
    const data: TemplateData = {
      Cluster: { ID: this.#o.clusterId, CACert: this.#o.identity.ca.certPem },
      Server: {
        Shard: this.#o.shard,
        RegistrationAddr: this.#o.advertise.registration,
        AgentAddr: this.#o.advertise.agent,
        OperatorAddr: this.#o.advertise.operator ?? "",
      },
      Provider: {
        Kind: this.#o.provider.kind,
        Region: config.shard.infra.region,
        Zone: config.shard.infra.zone,
      },
      Instance: { ID: id, Kind: group.kind, Arch: group.arch, Type: instanceType },
      Vars: vars,
      Image: {},
      Nonce: nonce,
    };
    const userData = group.userdata
      ? renderTemplate(
          await resolveUserdata(group.userdata, this.#o.fetchUserdata ?? fetchBytes, signal),
          data,
          "userdata",
        )
      : "";
    const args = renderStrings({ ...group.args }, data, "args");
    const subnetId = await pickSubnet(this.#o.provider, pool, subnets, signal);

    const { db } = this.#o;
    db.transaction(() => {
      insertPendingInstance(db, {
        id,
        tenant,
        groupKey,
        onDemand,
        nonce,
        infraConfigHash: group.infraHash,
        subnetId,
        instanceType,
        createdAt: now,
      });
      recordDecision(db, {
        instanceId: id,
        decision: "create_requested",
        reason: opts.reason,
        evidence: {
          subnet_id: subnetId,
          infra_config_hash: group.infraHash,
          ...(opts.replaces ? { replaces: opts.replaces } : {}),
        },
        at: now,
      });
      if (opts.replaces !== undefined) {
        setReplacedBy(db, opts.replaces, id, now);
        recordDecision(db, {
          instanceId: opts.replaces,
          decision: "replacement_started",
          reason: opts.reason,
          evidence: { replacement_id: id },
          at: now,
        });
      }
    })();

    const storage = this.#o.fence.guardStorage(this.#o.storage, term);
    const key = instanceRecordKey(this.#o.prefix, tenant, id);
    try {
      await storage.put(
        key,
        `${JSON.stringify(
          pendingRecord({
            instanceId: id,
            tenant,
            group: groupKey,
            template: group.template,
            kind: group.kind,
            arch: group.arch,
            onDemand,
            subnetId,
            subnetPool: pool,
            instanceType,
            vars,
            registrationJwt: nonce,
            infraConfigHash: group.infraHash,
            runtimeConfigHash: group.runtimeHash,
            reason: opts.reason,
            ...(opts.replaces === undefined ? {} : { replaces: opts.replaces }),
            createdAt: now,
          }),
          null,
          2,
        )}\n`,
        { condition: { ifNoneMatch: "*" }, contentType: "application/json", signal },
      );
      const req: CreateInstanceRequest = {
        clusterId: this.#o.clusterId,
        shard: this.#o.shard,
        tenant,
        group: groupKey,
        template: group.template,
        instanceKind: group.kind,
        instanceId: id,
        instanceType,
        subnetId,
        userData,
        nonce,
        caCertPem: this.#o.identity.ca.certPem,
        args,
        tags: {},
        agentEnv: {
          [AGENT_ENV_REGISTRATION_ADDR]: this.#o.advertise.registration,
          [AGENT_ENV_AGENT_ADDR]: this.#o.advertise.agent,
          [AGENT_ENV_METRICS_INTERVAL]: `${config.shard.healthCheckIntervalMs}ms`,
        },
      };
      const result = await this.#o.provider.createInstance(
        req,
        this.#o.fence.signalFor(term, signal, `create instance ${id}`),
      );
      const at = this.#now();
      recordProviderCreate(db, id, {
        providerId: result.providerInstanceId,
        status: result.status,
        ip4: result.privateIpv4,
        ip6: result.privateIpv6,
        hostname: result.hostname,
        at,
      });
      recordDecision(db, {
        instanceId: id,
        decision: "created",
        reason: opts.reason,
        evidence: {
          provider_instance_id: result.providerInstanceId,
          provider_status: result.status,
          subnet_id: subnetId,
        },
        at,
      });
      this.#logger.info("Instance created", {
        instance_id: id,
        tenant,
        group: groupKey,
        provider_instance_id: result.providerInstanceId,
        subnet_id: subnetId,
        reason: opts.reason,
        on_demand: onDemand,
        ...(opts.replaces ? { replaces: opts.replaces } : {}),
      });
      await this.#updateRecord(
        storage,
        key,
        "record provider id",
        () => ({
          provider_instance_id: result.providerInstanceId,
          private_ipv4: result.privateIpv4 ?? "",
          private_ipv6: result.privateIpv6 ?? "",
          hostname: result.hostname ?? "",
          launched_at: new Date(result.launchedAt).toISOString(),
          last_updated: new Date(at).toISOString(),
        }),
        signal,
      );
      return {
        instanceId: id,
        providerInstanceId: result.providerInstanceId,
        status: result.status,
      };
    } catch (err) {
      const at = this.#now();
      markInstanceDeleted(db, id, at, "deleted");
      recordDecision(db, {
        instanceId: id,
        decision: "create_failed",
        reason: opts.reason,
        evidence: { error: errorMessage(err) },
        at,
      });
      if (!isAbortError(err) && !(err instanceof NstanceError && err.code === "aborted")) {
        await this.#updateRecord(
          storage,
          key,
          "mark failed create",
          () => ({
            status: "deleting",
            deleted_at: new Date(at).toISOString(),
            delete_reason: "create-failed",
            last_updated: new Date(at).toISOString(),
          }),
          signal,
        );
      }
      throw err;
    }
  }

  /**
   * Deletes instance `id`: load balancers, provider, record, row. `unknown` when there is no live
   * row. Throws StaleTermError when the term moved on and what the provider or storage throws
   * (nothing is marked deleted then, so a retry repeats the idempotent steps).
   */
  async delete(
    id: string,
    opts: ExecutorDeleteOptions,
    term: number,
    signal?: AbortSignal,
  ): Promise<ExecutorDeleteOutcome> {
    const { db, provider } = this.#o;
    const row = getInstance(db, id);
    if (!row || row.deletedAt !== undefined) return "unknown";
    const { config, effective } = this.#o.groups.current();
    let outcome = "no-provider-id";
    const deregistered: string[] = [];
    if (row.providerId !== undefined) {
      const group = effective.groups.find((g) => g.tenant === row.tenant && g.key === row.groupKey);
      const lbs = new Set([...(group?.loadBalancers ?? []), ...listInstanceLoadBalancers(db, id)]);
      for (const lbName of lbs) {
        const lbConfig = config.loadBalancers[lbName];
        if (!lbConfig) {
          this.#logger.warn("Load balancer of a deleted instance is no longer configured", {
            instance_id: id,
            load_balancer: lbName,
          });
          continue;
        }
        await provider.deregisterFromLb(
          { providerInstanceId: row.providerId, lbName, lbConfig },
          this.#o.fence.signalFor(term, signal, `deregister ${id} from ${lbName}`),
        );
        deregistered.push(lbName);
      }
      outcome = await provider.deleteInstance(
        id,
        row.providerId,
        this.#o.fence.signalFor(term, signal, `delete instance ${id}`),
      );
    }
    const at = this.#now();
    const storage = this.#o.fence.guardStorage(this.#o.storage, term);
    await updateJsonObject(
      storage,
      instanceRecordKey(this.#o.prefix, row.tenant, id),
      (current) => ({
        ...(current ?? instanceRecordFromRow(row)),
        status: "deleting",
        deleted_at: new Date(at).toISOString(),
        delete_reason: opts.reason,
        // Why a drain that ended in this delete was started: another server's history reads it.
        ...(opts.drainReason ? { drain_reason: opts.drainReason } : {}),
        last_updated: new Date(at).toISOString(),
      }),
      { signal },
    );
    const providerStatus = outcome === "deleted" ? "deleting" : "deleted";
    if (!markInstanceDeleted(db, id, at, providerStatus)) return "unknown";
    recordDecision(db, {
      instanceId: id,
      decision: "deleted",
      reason: opts.reason,
      evidence: {
        ...opts.evidence,
        provider_instance_id: row.providerId ?? "",
        provider_outcome: outcome,
        skip_drain: opts.skipDrain ?? false,
        ...(opts.drainReason ? { drain_reason: opts.drainReason } : {}),
        ...(deregistered.length > 0 ? { load_balancers: deregistered } : {}),
      },
      at,
    });
    this.#logger.info("Instance deleted", {
      instance_id: id,
      tenant: row.tenant,
      group: row.groupKey,
      provider_instance_id: row.providerId ?? "",
      reason: opts.reason,
      provider_outcome: outcome,
    });
    return "deleted";
  }

  #instanceId(group: EffectiveGroup, requested: string | undefined): string {
    if (requested === undefined || requested === "") return newInstanceId(group.kind);
    if (!isInstanceId(requested)) {
      throw new NstanceError(
        "invalid_argument",
        `invalid instance ID ${JSON.stringify(requested)}`,
      );
    }
    if (parseInstanceId(requested).kind !== group.kind) {
      throw new NstanceError(
        "invalid_argument",
        `instance ID ${requested} does not start with the template kind ${group.kind}`,
      );
    }
    return requested;
  }

  /** Merges `fields` into a record; failures are logged (rebuild and GC repair what is missed). */
  async #updateRecord(
    storage: ObjectStorage,
    key: string,
    what: string,
    fields: () => Record<string, unknown>,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    try {
      await updateJsonObject(storage, key, (current) => ({ ...current, ...fields() }), { signal });
    } catch (err) {
      this.#logger.warn("Cannot update instance record", {
        key,
        step: what,
        err: errorMessage(err),
      });
    }
  }
}
