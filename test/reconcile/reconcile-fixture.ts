// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for reconciler tests: a real SQLite file in a temp dir, a real cluster identity and
 * ConfigStore over MemoryStorage (or a FileStorage bucket), the shard config of examples/local.jsonc
 * with edits, a FakeProvider, a leadership term the test controls, and "fake agents" that register
 * each instance shortly after the provider creates it (no gRPC: the row is marked registered, as
 * RegisterAgent would).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONPath } from "jsonc-parser";
import type { EffectiveGroup } from "../../src/config/server-config.js";
import { type Db, openDatabase } from "../../src/db/database.js";
import { markInstanceRegistered } from "../../src/db/instances-table.js";
import { TermFence, type TermSource } from "../../src/election/term-fence.js";
import { type ClusterIdentity, ensureClusterIdentity } from "../../src/pki/cluster-identity.js";
import type { ErrorEvent, InstanceEvent } from "../../src/protocol/gen/nstance/v1/operator.js";
import { FakeProvider, type FakeProviderOptions } from "../../src/providers/fake/fake-provider.js";
import type { Reconciler } from "../../src/reconcile/reconciler.js";
import { TenantEvents } from "../../src/reconcile/tenant-events.js";
import { configKey, loadConfigOnce } from "../../src/server/config-loader.js";
import { ConfigStore } from "../../src/server/config-store.js";
import {
  type ReconcilerTuning,
  type ShardManagement,
  startShardManagement,
} from "../../src/server/instances/start-shard-management.js";
import { silentLogger } from "../../src/shared/logger.js";
import { sleep } from "../../src/shared/sleep.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import type { ObjectStorage } from "../../src/storage/object-storage.js";
import { shardConfigText } from "../support/shard-fixture.js";
import { InvariantChecker } from "./invariant-checker.js";

/** Cluster and shard of examples/local.jsonc. */
export const CLUSTER_ID = "local";
/** Shard of examples/local.jsonc. */
export const SHARD = "local";
/** Shard prefix. */
export const PREFIX = `shard/${SHARD}/`;
/** Encrypts the cluster secrets; fixed, so a restarted fixture reads the same bucket. */
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7);
/** Bound of every wait: generous, so slow machines fail only on real bugs. */
export const WAIT_MS = 20_000;

/** A leadership term the test advances. */
export class TestTerm implements TermSource {
  term = 1;
  #ctl = new AbortController();
  #revoked = false;
  isCurrentTerm(term: number): boolean {
    return term === this.term && !this.#revoked && !this.#ctl.signal.aborted;
  }
  /** The lease lapsed: the term is no longer current, but its signal has not aborted yet. */
  revoke(): void {
    this.#revoked = true;
  }
  termSignal(term: number): AbortSignal | undefined {
    return this.isCurrentTerm(term) ? this.#ctl.signal : undefined;
  }
  /** The current term's signal. */
  get signal(): AbortSignal {
    return this.#ctl.signal;
  }
  /** Ends the current term and starts the next. */
  advance(): void {
    this.#ctl.abort(new Error(`term ${this.term} ended`));
    this.#ctl = new AbortController();
    this.#revoked = false;
    this.term++;
  }
}

/** Options for {@link startReconcileFixture}. */
export interface ReconcileFixtureOptions {
  /** Edits of examples/local.jsonc (after the fixture's own: fake provider, quick GC). */
  configEdits?: Array<[JSONPath, unknown]>;
  /** The bucket; defaults to a MemoryStorage. */
  storage?: ObjectStorage;
  /** Directory of the SQLite file; defaults to a fresh temp dir. */
  cachedir?: string;
  provider?: FakeProvider;
  providerOptions?: FakeProviderOptions;
  /** Register agents this long after their create; `undefined` = never register. Default 5 ms. */
  registerAfterMs?: number | undefined;
  /** Acknowledge drains this long after the notice; `undefined` = never. */
  ackAfterMs?: number;
  tuning?: ReconcilerTuning;
  /** Start shard management at once. Defaults to true. */
  start?: boolean;
  gc?: boolean;
}

/** A running reconciler with everything around it. */
export interface ReconcileFixture {
  db: Db;
  storage: ObjectStorage;
  configStore: ConfigStore;
  identity: ClusterIdentity;
  provider: FakeProvider;
  term: TestTerm;
  fence: TermFence;
  checker: InvariantChecker;
  drainEvents: InstanceEvent[];
  errorEvents: ErrorEvent[];
  cachedir: string;
  /** The running management, if started. */
  mgmt: ShardManagement | undefined;
  reconciler(): Reconciler;
  /** Starts (or restarts, under the current term) shard management. */
  start(): Promise<ShardManagement>;
  /** Stops shard management (the term stays). */
  stopManagement(): Promise<void>;
  /** Managed live rows of a group, oldest first. */
  live(
    group?: string,
    tenant?: string,
  ): Array<{ id: string; createdAt: number; infraHash: string }>;
  group(key: string, tenant?: string): EffectiveGroup | undefined;
  close(): Promise<void>;
}

/** Polls `cond` every 10 ms until it holds; throws with `what` after {@link WAIT_MS}. */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The fixture's config edits: fake provider, and the caller's. */
function edits(extra: Array<[JSONPath, unknown]>): Array<[JSONPath, unknown]> {
  return [[["shard", "infra", "provider"], "fake"], ...extra];
}

/** Starts the fixture. */
export async function startReconcileFixture(
  opts: ReconcileFixtureOptions = {},
): Promise<ReconcileFixture> {
  const ownCachedir = opts.cachedir === undefined;
  const cachedir = opts.cachedir ?? (await mkdtemp(join(tmpdir(), "nstance-reconcile-")));
  const storage = opts.storage ?? new MemoryStorage({ name: "reconcile-test" });
  if (!(await storage.head(configKey(SHARD)))) {
    await storage.put(configKey(SHARD), await shardConfigText(edits(opts.configEdits ?? [])));
  }
  const identity = await ensureClusterIdentity({
    storage,
    clusterId: CLUSTER_ID,
    encryptionKey: TEST_ENCRYPTION_KEY,
    logger: silentLogger,
  });
  const db = openDatabase({ path: join(cachedir, "db", "nstance.db") });
  const loaderOpts = { storage, shard: SHARD, cachedir, db, logger: silentLogger };
  const configStore = new ConfigStore({ ...loaderOpts, initial: await loadConfigOnce(loaderOpts) });
  const term = new TestTerm();
  const fence = new TermFence({ source: term });
  const drainEvents: InstanceEvent[] = [];
  const errorEvents: ErrorEvent[] = [];
  const drainNotifier = new TenantEvents<InstanceEvent>();
  const errorNotifier = new TenantEvents<ErrorEvent>();
  const registerAfterMs = "registerAfterMs" in opts ? opts.registerAfterMs : 5;
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  let mgmt: ShardManagement | undefined;
  const provider =
    opts.provider ??
    new FakeProvider({
      createDelayMs: 0,
      deleteDelayMs: 0,
      ...opts.providerOptions,
      onCreate: (req) => {
        if (registerAfterMs === undefined) return;
        later(registerAfterMs, () => {
          const ok = markInstanceRegistered(db, {
            id: req.instanceId,
            registeredAt: Date.now(),
            instancePub: "test-key",
            certSerial: "1",
          });
          if (ok) mgmt?.reconciler.instanceChanged(req.instanceId);
        });
      },
    });
  drainNotifier.subscribe(undefined, (e) => {
    drainEvents.push(e);
    if (opts.ackAfterMs !== undefined && e.status === "pending_deletion") {
      later(opts.ackAfterMs, () => {
        mgmt?.reconciler.acknowledgeDrained(e.instanceId);
      });
    }
  });
  errorNotifier.subscribe(undefined, (e) => errorEvents.push(e));
  const groups = (): readonly EffectiveGroup[] => configStore.current().effective.groups;
  const checker = new InvariantChecker({ db, groups, reconciler: () => mgmt?.reconciler });

  const f: ReconcileFixture = {
    db,
    storage,
    configStore,
    identity,
    provider,
    term,
    fence,
    checker,
    drainEvents,
    errorEvents,
    cachedir,
    get mgmt() {
      return mgmt;
    },
    reconciler: () => {
      if (!mgmt) throw new Error("shard management is not running");
      return mgmt.reconciler;
    },
    start: async () => {
      mgmt = await startShardManagement({
        term: term.term,
        signal: term.signal,
        fence,
        clusterId: CLUSTER_ID,
        shard: SHARD,
        prefix: PREFIX,
        db,
        storage,
        configStore,
        provider,
        identity,
        advertise: { registration: "127.0.0.1:8992", agent: "127.0.0.1:8994" },
        logger: silentLogger,
        drainNotifier,
        errorNotifier,
        reconciler: {
          resyncIntervalMs: 1000,
          retry: { initialMs: 50, maxMs: 200 },
          ...opts.tuning,
          onAction: (e) => {
            checker.onAction(e);
            opts.tuning?.onAction?.(e);
          },
        },
        gc: opts.gc ?? false,
      });
      return mgmt;
    },
    stopManagement: async () => {
      await mgmt?.stop();
      mgmt = undefined;
    },
    live: (group = "web", tenant = "default") =>
      db
        .prepare(
          `SELECT id, created_at, infra_config_hash FROM instances
           WHERE tenant = ? AND group_key = ? AND on_demand = 0 AND deleted_at IS NULL
           ORDER BY created_at, id`,
        )
        .all(tenant, group)
        .map((r) => {
          const row = r as { id: string; created_at: number; infra_config_hash: string };
          return { id: row.id, createdAt: row.created_at, infraHash: row.infra_config_hash };
        }),
    group: (key, tenant = "default") => configStore.group(tenant, key),
    close: async () => {
      await mgmt?.stop();
      for (const t of timers) clearTimeout(t);
      db.close();
      if (ownCachedir) await rm(cachedir, { recursive: true, force: true });
    },
  };
  if (opts.start !== false) await f.start();
  return f;
}
