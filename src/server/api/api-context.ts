// SPDX-License-Identifier: Apache-2.0
/**
 * What the gRPC services need from the rest of the server, declared narrowly here so the
 * composition root (and tests) can hand in exactly these parts.
 */
import type { Db } from "../../db/database.js";
import type { ClusterIdentity } from "../../pki/cluster-identity.js";
import type { Reconciler } from "../../reconcile/reconciler.js";
import type { DrainNotifier, ErrorNotifier } from "../../reconcile/tenant-events.js";
import type { Logger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { ConfigStore } from "../config-store.js";
import type { SecretsStore } from "../secrets/secrets-store.js";

/** The shard leader as last observed. */
export interface LeaderRef {
  id: string;
  /** Its advertised election address (`host:port`), possibly empty. */
  addr: string;
  term: number;
  /** Its advertised Operator API address, from its heartbeat, when known. */
  operatorAddr?: string;
}

/** This server's view of the shard election (a LockfileElector satisfies it). */
export interface Leadership {
  /** True while this server leads the shard. */
  isLeader(): boolean;
  /** The leader as last observed, or `undefined` when none is known. */
  leader(): LeaderRef | undefined;
}

/** What the API asks of the shard leader's reconciler. */
export type ApiReconciler = Pick<
  Reconciler,
  "createOnDemand" | "deleteInstance" | "acknowledgeDrained" | "instanceChanged"
>;

/** The reconciler of the current leadership term, and that term's signal. */
export interface TermReconciler {
  term: number;
  /** Aborts when the term ends (leadership lost, resigned, or the server stopping). */
  signal: AbortSignal;
  reconciler: ApiReconciler;
}

/** The parts of the server the API services use. */
export interface ApiContext {
  clusterId: string;
  shard: string;
  /** Shard key prefix in the bucket (`--prefix`, default `shard/{shard}/`). */
  prefix: string;
  db: Db;
  /** The bucket, not scoped: cluster objects live under `cluster/`, shard ones under `prefix`. */
  storage: ObjectStorage;
  configStore: Pick<
    ConfigStore,
    "current" | "group" | "refresh" | "upsertGroup" | "deleteGroup" | "subscribe"
  >;
  identity: ClusterIdentity;
  leadership: Leadership;
  /** Cluster secrets for PutSecret/ListSecrets/DeleteSecret; without it they answer UNIMPLEMENTED. */
  secrets?: SecretsStore;
  /**
   * The leader's reconciler while this server leads and its shard management runs; `undefined`
   * on standbys and while a new leader rebuilds its cache. Absent: instance RPCs answer UNAVAILABLE.
   */
  reconciler?: () => TermReconciler | undefined;
  /** Drain notices for WatchInstances (shared with the reconciler, across terms). */
  drainNotifier?: DrainNotifier;
  /** Reconciler and provider failures for WatchErrors (shared with the reconciler). */
  errorNotifier?: ErrorNotifier;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  logger: Logger;
}
