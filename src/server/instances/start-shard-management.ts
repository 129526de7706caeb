// SPDX-License-Identifier: Apache-2.0
/**
 * Everything a shard leader runs for its instances during one term, in the reference's order
 * (§4.3): rebuild the SQLite cache from storage and the provider, start the reconciler with its
 * initial reconciliation, then the garbage collection loop. Call it from the elector's
 * `onAcquire`; `stop()` (or the term's signal) ends it all.
 */
import type { Db } from "../../db/database.js";
import type { TermFence } from "../../election/term-fence.js";
import type { Provider } from "../../providers/provider.js";
import type { GroupSource } from "../../reconcile/group-source.js";
import { Reconciler, type ReconcilerOptions } from "../../reconcile/reconciler.js";
import type { DrainNotifier, ErrorNotifier } from "../../reconcile/tenant-events.js";
import type { Logger } from "../../shared/logger.js";
import { runInBackground } from "../../shared/run-in-background.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { GarbageCollector } from "../gc/garbage-collector.js";
import { runLeaderLoops } from "../leader-work.js";
import { InstanceManager, type NonceIdentity, type ShardAddresses } from "./instance-manager.js";
import { type RebuildCacheResult, rebuildCache } from "./rebuild-cache.js";

/** Reconciler settings a caller may tune (tests, benchmarks); everything else is wired here. */
export type ReconcilerTuning = Pick<
  ReconcilerOptions,
  | "queueCapacity"
  | "resyncIntervalMs"
  | "createsInFlightPerGroup"
  | "maxConcurrentCreates"
  | "guard"
  | "retry"
  | "random"
  | "onAction"
  | "hooks"
>;

/** Options for {@link startShardManagement}. */
export interface ShardManagementOptions {
  /** The leadership term being started. */
  term: number;
  /** The term's signal (the elector's `onAcquire` argument). */
  signal: AbortSignal;
  /** A fence over the shard elector (`new TermFence({ source: elector })`). */
  fence: TermFence;
  clusterId: string;
  shard: string;
  /** Shard key prefix (`--prefix`, default `shard/{shard}/`). */
  prefix: string;
  db: Db;
  /** The bucket (unscoped). */
  storage: ObjectStorage;
  /** The ConfigStore. */
  configStore: GroupSource;
  provider: Provider;
  /** The cluster identity (nonce signing key and CA certificate). */
  identity: NonceIdentity;
  /** This server's advertised Registration/Agent (and Operator) addresses, given to new agents. */
  advertise: ShardAddresses;
  logger: Logger;
  /** Shared with WatchInstances; lives across terms. */
  drainNotifier?: DrainNotifier;
  /** Shared with WatchErrors; lives across terms. */
  errorNotifier?: ErrorNotifier;
  now?: () => number;
  reconciler?: ReconcilerTuning;
  /** Run the garbage collection loop. Defaults to true. */
  gc?: boolean;
}

/** The running leader-side instance management of one term. */
export interface ShardManagement {
  /** For the Operator API (CreateInstance, DeleteInstance, AcknowledgeDrained) and health (issue 7). */
  reconciler: Reconciler;
  instances: InstanceManager;
  gc: GarbageCollector;
  /** What the cache rebuild found. */
  rebuild: RebuildCacheResult;
  /** Stops the GC loop and the reconciler, waiting for actions in flight. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Rebuilds the cache, then starts the reconciler and garbage collection for `opts.term`. Throws
 * when the rebuild fails (storage or provider list unreachable); the elector then resigns.
 */
export async function startShardManagement(opts: ShardManagementOptions): Promise<ShardManagement> {
  const logger = opts.logger;
  const rebuild = await rebuildCache(
    {
      db: opts.db,
      storage: opts.storage,
      prefix: opts.prefix,
      provider: opts.provider,
      clusterId: opts.clusterId,
      shard: opts.shard,
      logger,
      fence: opts.fence,
      term: opts.term,
      ...(opts.now ? { now: opts.now } : {}),
    },
    opts.signal,
  );
  opts.fence.assertCurrent(opts.term, "shard management");
  const instances = new InstanceManager({
    clusterId: opts.clusterId,
    shard: opts.shard,
    prefix: opts.prefix,
    db: opts.db,
    storage: opts.storage,
    provider: opts.provider,
    identity: opts.identity,
    groups: opts.configStore,
    fence: opts.fence,
    advertise: opts.advertise,
    logger,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const reconciler = new Reconciler({
    ...opts.reconciler,
    term: opts.term,
    fence: opts.fence,
    db: opts.db,
    groups: opts.configStore,
    executor: instances,
    logger,
    signal: opts.signal,
    ...(opts.drainNotifier ? { drainNotifier: opts.drainNotifier } : {}),
    ...(opts.errorNotifier ? { errorNotifier: opts.errorNotifier } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const gc = new GarbageCollector({
    db: opts.db,
    storage: opts.storage,
    prefix: opts.prefix,
    fence: opts.fence,
    settings: () => opts.configStore.current().config.shard.garbageCollection,
    deleteInstance: (id, o, signal) => reconciler.deleteInstance(id, o, signal),
    logger,
    ...(opts.now ? { now: opts.now } : {}),
  });
  reconciler.start();
  const ctl = new AbortController();
  const gcSignal = AbortSignal.any([opts.signal, ctl.signal]);
  const gcLoop =
    opts.gc === false
      ? Promise.resolve()
      : runInBackground(
          "garbage collection",
          () =>
            runLeaderLoops(
              [gc],
              {
                term: opts.term,
                signal: gcSignal,
                storage: opts.fence.guardStorage(opts.storage, opts.term),
              },
              (t) => opts.fence.isCurrentTerm(t),
              logger,
            ),
          logger,
        );
  let stopped: Promise<void> | undefined;
  return {
    reconciler,
    instances,
    gc,
    rebuild,
    stop: () => {
      stopped ??= (async () => {
        ctl.abort();
        await gcLoop;
        await reconciler.stop();
      })();
      return stopped;
    },
  };
}
