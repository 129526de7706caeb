// SPDX-License-Identifier: Apache-2.0
/**
 * The Operator service (mutual TLS, role `operator`): groups, config, certificates, instances,
 * tenants and secrets of the caller's tenant, a file per RPC. Every handler reads the caller's
 * identity first, so every call is scoped to the tenant in its certificate. Reads work on any
 * server; mutating calls need the shard leader (the standby rule, beyond the reference), and so do
 * the instance RPCs and the WatchInstances / WatchErrors streams, which act through (or follow)
 * the leader's reconciler of the current term.
 */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { OperatorServiceServer } from "../../../protocol/gen/nstance/v1/operator.js";
import { OperatorServiceService } from "../../../protocol/gen/nstance/v1/operator.js";
import type { CallWithAuthContext } from "../../../protocol/peer-certificate.js";
import type { ApiContext } from "../api-context.js";
import type { Authenticator } from "../auth.js";
import { serverStreamHandler, unaryHandler } from "../handler.js";
import { LatestStreamPerKey } from "../latest-stream.js";
import { acknowledgeDrained } from "./acknowledge-drained.js";
import { createInstance } from "./create-instance.js";
import { deleteGroup } from "./delete-group.js";
import { deleteInstance } from "./delete-instance.js";
import { getConfigStatus } from "./get-config-status.js";
import { getInstanceHistory } from "./get-instance-history.js";
import { getInstanceStatus } from "./get-instance-status.js";
import { listGroups } from "./list-groups.js";
import { listInstances } from "./list-instances.js";
import { refreshConfig } from "./refresh-config.js";
import { renewCertificate } from "./renew-certificate.js";
import { deleteSecret, listSecrets, putSecret } from "./secrets.js";
import { getTenantStatus, sleepTenant, wakeTenant } from "./tenant-sleep.js";
import { upsertGroup } from "./upsert-group.js";
import { watchErrors } from "./watch-errors.js";
import { watchGroups } from "./watch-groups.js";
import { watchInstances } from "./watch-instances.js";

/** Options for {@link createOperatorService}. */
export interface OperatorServiceOptions {
  ctx: ApiContext;
  auth: Authenticator;
  /** Aborts when the server stops; open watch streams then end with UNAVAILABLE. */
  stopSignal?: AbortSignal;
}

type Def = typeof OperatorServiceService;
type ReqOf<K extends keyof Def> = ReturnType<Def[K]["requestDeserialize"]>;
type ResOf<K extends keyof Def> = Parameters<Def[K]["responseSerialize"]>[0];

/** Builds the Operator service implementation. */
export function createOperatorService(opts: OperatorServiceOptions): OperatorServiceServer {
  const { ctx, auth, stopSignal } = opts;
  const logger = ctx.logger;
  const groupStreams = new LatestStreamPerKey("WatchGroups");
  const caller = (call: CallWithAuthContext): ClientIdentity => auth.authorize(call, "operator");

  /** A unary RPC whose implementation receives the caller's identity. */
  const unary = <K extends keyof Def>(
    name: K,
    fn: (
      caller: ClientIdentity,
      req: ReqOf<K>,
      signal: AbortSignal,
    ) => ResOf<K> | Promise<ResOf<K>>,
  ) =>
    unaryHandler<ReqOf<K>, ResOf<K>>(
      { method: OperatorServiceService[name].path, logger },
      async (req, call, signal) => fn(caller(call), req, signal),
    );

  /** A server-streaming RPC (all take Empty) whose implementation receives the caller's identity. */
  const stream = <K extends keyof Def>(
    name: K,
    fn: (caller: ClientIdentity, signal: AbortSignal) => AsyncIterable<ResOf<K>>,
  ) =>
    serverStreamHandler<ReqOf<K>, ResOf<K>>(
      { method: OperatorServiceService[name].path, logger, stopSignal },
      (_req, call, signal) => fn(caller(call), signal),
    );

  return {
    renewCertificate: unary("renewCertificate", (who, req, signal) =>
      renewCertificate(ctx, who, req, signal),
    ),
    getConfigStatus: unary("getConfigStatus", (_who, _req, signal) => getConfigStatus(ctx, signal)),
    refreshConfig: unary("refreshConfig", (who, _req, signal) => refreshConfig(ctx, who, signal)),
    listGroups: unary("listGroups", (who) => listGroups(ctx, who)),
    upsertGroup: unary("upsertGroup", (who, req, signal) => upsertGroup(ctx, who, req, signal)),
    deleteGroup: unary("deleteGroup", (who, req, signal) => deleteGroup(ctx, who, req, signal)),
    createInstance: unary("createInstance", (who, req) => createInstance(ctx, who, req)),
    deleteInstance: unary("deleteInstance", (who, req) => deleteInstance(ctx, who, req)),
    getInstanceStatus: unary("getInstanceStatus", (who, req) => getInstanceStatus(ctx, who, req)),
    listInstances: unary("listInstances", (who, req) => listInstances(ctx, who, req)),
    getInstanceHistory: unary("getInstanceHistory", (who, req) =>
      getInstanceHistory(ctx, who, req),
    ),
    acknowledgeDrained: unary("acknowledgeDrained", (who, req) =>
      acknowledgeDrained(ctx, who, req),
    ),
    sleepTenant: unary("sleepTenant", (who, req) => sleepTenant(ctx, who, req)),
    wakeTenant: unary("wakeTenant", (who, req) => wakeTenant(ctx, who, req)),
    getTenantStatus: unary("getTenantStatus", (who, req) => getTenantStatus(who, req)),
    putSecret: unary("putSecret", (_who, req, signal) => putSecret(ctx, req, signal)),
    listSecrets: unary("listSecrets", (_who, _req, signal) => listSecrets(ctx, signal)),
    deleteSecret: unary("deleteSecret", (_who, req, signal) => deleteSecret(ctx, req, signal)),
    watchGroups: stream("watchGroups", (who, signal) =>
      watchGroups(ctx, who, groupStreams, signal),
    ),
    watchInstances: stream("watchInstances", (who, signal) => watchInstances(ctx, who, signal)),
    watchErrors: stream("watchErrors", (who, signal) => watchErrors(ctx, who, signal)),
  };
}
