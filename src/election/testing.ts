// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for elections (never imported by non-test code): a simulated clock, a per-process
 * view of it with rate drift, offsets and pauses, and a storage decorator that injects latency,
 * failures and stalls and counts operations.
 */
import { NstanceError, StorageError } from "../shared/errors.js";
import { MemoryStorage } from "../storage/memory-storage.js";
import type {
  ObjectInfo,
  ObjectStorage,
  PutOptions,
  StoredObject,
} from "../storage/object-storage.js";
import type { ElectionTimings } from "./election-timings.js";
import type { LockRecord } from "./lockfile.js";
import {
  LockfileElector,
  type LockfileElectorOptions,
  type LoseReason,
} from "./lockfile-elector.js";
import { TermFence } from "./term-fence.js";

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
}

/** Lets every pending promise continuation run (one macrotask turn drains the microtask queue). */
export function flushAsync(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Simulated time: sleeps resolve only when {@link FakeClock.advance} passes their time. */
export class FakeClock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<Timer>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  /** Current simulated time in ms. */
  readonly now = (): number => this.#now;

  /** Abortable sleep in simulated time. */
  readonly sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
    this.sleepUntil(this.#now + Math.max(0, ms), signal);

  /** Resolves once simulated time reaches `at`; rejects with the signal's reason on abort. */
  sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer: Timer = {
        at,
        seq: this.#seq++,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        this.#timers.delete(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#timers.add(timer);
    });
  }

  /** Number of sleeps waiting. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Advances simulated time by `ms`, firing due timers in order and letting their work run. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + ms);
  }

  /** Advances simulated time to `at` (see {@link advance}). */
  async advanceTo(at: number): Promise<void> {
    for (;;) {
      await flushAsync();
      let next: Timer | undefined;
      for (const t of this.#timers) {
        if (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
      }
      if (!next || next.at > at) break;
      this.#timers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.resolve();
    }
    this.#now = Math.max(this.#now, at);
    await flushAsync();
  }

  /** Advances in `stepMs` steps until `pred()` holds or `maxMs` passed; returns whether it held. */
  async advanceUntil(pred: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const end = this.#now + maxMs;
    while (!pred()) {
      if (this.#now >= end) return false;
      await this.advance(Math.min(stepMs, end - this.#now));
    }
    return true;
  }
}

/** Options for {@link ProcessClock}. */
export interface ProcessClockOptions {
  clock: FakeClock;
  /** Rate of this process's clocks relative to true time (1 ± drift). Defaults to 1. */
  rate?: number;
  /** Offset of the monotonic clock (arbitrary origin per process). Defaults to 0. */
  offsetMs?: number;
  /** Offset of the wall clock from true time (skew). Defaults to 0. */
  wallSkewMs?: number;
}

/** Epoch ms that simulated time 0 maps to on wall clocks. */
export const WALL_EPOCH_MS = Date.UTC(2025, 0, 1);

/**
 * One process's view of simulated time: its clocks run at `rate` with their own offsets, and while
 * paused (SIGSTOP, a GC pause, or killed = paused forever) none of its sleeps wake up.
 */
export class ProcessClock {
  readonly #clock: FakeClock;
  readonly #rate: number;
  readonly #offsetMs: number;
  readonly #wallSkewMs: number;
  #pausedUntil = Number.NEGATIVE_INFINITY;

  constructor(opts: ProcessClockOptions) {
    this.#clock = opts.clock;
    this.#rate = opts.rate ?? 1;
    this.#offsetMs = opts.offsetMs ?? 0;
    this.#wallSkewMs = opts.wallSkewMs ?? 0;
  }

  /** This process's monotonic clock. */
  readonly now = (): number => this.#offsetMs + this.#clock.now() * this.#rate;

  /** This process's wall clock (epoch ms). */
  readonly wallNow = (): number =>
    WALL_EPOCH_MS + this.#wallSkewMs + this.#clock.now() * this.#rate;

  /** Sleeps `ms` of this process's time, then waits while the process is paused. */
  readonly sleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
    await this.#clock.sleepUntil(this.#clock.now() + Math.max(0, ms) / this.#rate, signal);
    await this.waitRunning(signal);
  };

  /** Pauses the process until true time `untilMs` (Infinity: killed). */
  pauseUntil(untilMs: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, untilMs);
  }

  /** Ends a pause at once. */
  resume(): void {
    this.#pausedUntil = Number.NEGATIVE_INFINITY;
  }

  /** True while paused. */
  get paused(): boolean {
    return this.#clock.now() < this.#pausedUntil;
  }

  /** Resolves when the process is not paused. */
  async waitRunning(signal?: AbortSignal): Promise<void> {
    while (this.paused) {
      const until = this.#pausedUntil;
      if (until === Number.POSITIVE_INFINITY) {
        // Killed: wait in steps so that resume() (test cleanup) can still wake us.
        await this.#clock.sleepUntil(this.#clock.now() + 60_000, signal);
      } else {
        await this.#clock.sleepUntil(until, signal);
      }
    }
  }
}

/** Operation counts of a {@link FaultyStorage}. */
export interface StorageCounts {
  get: number;
  head: number;
  put: number;
  delete: number;
  list: number;
}

/** Options for {@link FaultyStorage}. */
export interface FaultyStorageOptions {
  inner: ObjectStorage;
  /** Simulated clock for latency; without it requests take no time. */
  clock?: FakeClock;
  /** Request latency in ms (half before the operation takes effect, half after). */
  latencyMs?: number | (() => number);
  /** The calling process: responses are not delivered while it is paused. */
  process?: ProcessClock;
}

/** Failure modes a {@link FaultyStorage} can inject. */
export type StorageFault =
  /** Requests work. */
  | "none"
  /** Requests fail with a transient StorageError before taking effect. */
  | "fail"
  /** Requests hang (abortable) until the fault is cleared. */
  | "stall"
  /** Writes take effect, then the caller gets an error (an answer lost on the way back). */
  | "lose_answer";

/** One process's connection to shared storage, with injectable latency and faults. */
export class FaultyStorage implements ObjectStorage {
  readonly description: string;
  readonly #inner: ObjectStorage;
  readonly #clock: FakeClock | undefined;
  readonly #latency: () => number;
  readonly #process: ProcessClock | undefined;
  #fault: StorageFault = "none";
  #unstall: Array<() => void> = [];
  readonly counts: StorageCounts = { get: 0, head: 0, put: 0, delete: 0, list: 0 };

  constructor(opts: FaultyStorageOptions) {
    this.#inner = opts.inner;
    this.#clock = opts.clock;
    const l = opts.latencyMs ?? 0;
    this.#latency = typeof l === "number" ? () => l : l;
    this.#process = opts.process;
    this.description = `faulty:${opts.inner.description}`;
  }

  /** Sets the injected fault ("none" clears it and releases stalled requests). */
  setFault(fault: StorageFault): void {
    this.#fault = fault;
    if (fault !== "stall") {
      const waiters = this.#unstall;
      this.#unstall = [];
      for (const w of waiters) w();
    }
  }

  /** The injected fault. */
  get fault(): StorageFault {
    return this.#fault;
  }

  get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    this.counts.get++;
    return this.#op("get", key, signal, false, () => this.#inner.get(key, signal));
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    this.counts.head++;
    return this.#op("head", key, signal, false, () => this.#inner.head(key, signal));
  }

  put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    this.counts.put++;
    return this.#op("put", key, opts.signal, true, () =>
      this.#inner.put(key, body, { ...opts, signal: undefined }),
    );
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    this.counts.delete++;
    return this.#op("delete", key, signal, true, () => this.#inner.delete(key));
  }

  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    this.counts.list++;
    return this.#op("list", prefix, signal, false, () => this.#inner.list(prefix, signal));
  }

  async #op<T>(
    op: string,
    key: string,
    signal: AbortSignal | undefined,
    write: boolean,
    fn: () => Promise<T>,
  ): Promise<T> {
    const half = this.#latency() / 2;
    if (this.#clock && half > 0) await this.#clock.sleep(half, signal);
    signal?.throwIfAborted();
    while (this.#fault === "stall") await this.#waitUnstall(signal);
    if (this.#fault === "fail") throw new StorageError(op, key, "injected failure", true);
    const result = await fn();
    // The operation has taken effect; from here on an abort only loses the answer.
    if (this.#clock && half > 0) await this.#clock.sleep(half, signal);
    await this.#process?.waitRunning(signal);
    signal?.throwIfAborted();
    if (write && this.#fault === "lose_answer") {
      throw new StorageError(op, key, "injected lost answer", true);
    }
    return result;
  }

  #waitUnstall(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = (): void => reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#unstall.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }
}

/** One leadership term as the simulation saw it, in true (simulated) time. */
export interface TermRecord {
  nodeId: string;
  term: number;
  acquiredAt: number;
  /** When the term's signal aborted (the leader stopped acting). */
  lostAt?: number;
  reason?: LoseReason;
  /** When the leader's process was killed while leading. */
  killedAt?: number;
}

/** A leader-only action, recorded only if the fence said the term was current. */
export interface ActionRecord {
  nodeId: string;
  term: number;
  at: number;
}

/** A simulated server: its clocks, its storage connection and its elector. */
export interface SimNode {
  id: string;
  addr: string;
  proc: ProcessClock;
  storage: FaultyStorage;
  elector: LockfileElector;
  /** The peer endpoint refuses connections (process dead or endpoint broken). */
  peerDown: boolean;
  killed: boolean;
}

/** Options for {@link ElectionSim.addNode}. */
export interface SimNodeOptions extends Partial<ElectionTimings> {
  rate?: number;
  offsetMs?: number;
  wallSkewMs?: number;
  /** Use peer mode (ask the leader's simulated endpoint). Defaults to false. */
  peer?: boolean;
  /** Interval of the simulated leader-only work, in ms. Defaults to 250. */
  actionEveryMs?: number;
  /** Extra start-up work of the leader; may throw to test resignation. */
  onAcquire?: (term: number, signal: AbortSignal) => Promise<void> | void;
  onLose?: LockfileElectorOptions["onLose"];
}

/** Options for {@link ElectionSim}. */
export interface ElectionSimOptions {
  /** Storage request latency in ms. Defaults to 20. */
  latencyMs?: number | (() => number);
  /** Peer request latency in ms. Defaults to 5. */
  peerLatencyMs?: number;
}

/** Several electors sharing one storage in simulated time, with a full history of terms and actions. */
export class ElectionSim {
  readonly clock = new FakeClock(0);
  readonly shared = new MemoryStorage();
  readonly key = "shard/sim/leader.json";
  readonly nodes: SimNode[] = [];
  readonly terms: TermRecord[] = [];
  readonly actions: ActionRecord[] = [];
  readonly #latency: number | (() => number);
  readonly #peerLatencyMs: number;
  #recording = true;

  constructor(opts: ElectionSimOptions = {}) {
    this.#latency = opts.latencyMs ?? 20;
    this.#peerLatencyMs = opts.peerLatencyMs ?? 5;
  }

  /** Adds a server (not started). */
  addNode(id: string, opts: SimNodeOptions = {}): SimNode {
    const proc = new ProcessClock({
      clock: this.clock,
      rate: opts.rate,
      offsetMs: opts.offsetMs,
      wallSkewMs: opts.wallSkewMs,
    });
    const storage = new FaultyStorage({
      inner: this.shared,
      clock: this.clock,
      latencyMs: this.#latency,
      process: proc,
    });
    const addr = `${id}.sim:8991`;
    const actionEveryMs = opts.actionEveryMs ?? 250;
    const node: SimNode = {
      id,
      addr,
      proc,
      storage,
      peerDown: false,
      killed: false,
      elector: undefined as unknown as LockfileElector,
    };
    let fence: TermFence | undefined;
    node.elector = new LockfileElector({
      storage,
      key: this.key,
      id,
      advertiseAddr: addr,
      frequentIntervalMs: opts.frequentIntervalMs,
      infrequentIntervalMs: opts.infrequentIntervalMs,
      leaderTimeoutMs: opts.leaderTimeoutMs,
      safetyMarginMs: opts.safetyMarginMs,
      now: proc.now,
      wallNow: proc.wallNow,
      sleep: proc.sleep,
      fetchPeer: opts.peer ? (peerAddr, signal) => this.#fetchPeer(peerAddr, signal) : undefined,
      onAcquire: async (term, signal) => {
        const rec: TermRecord = { nodeId: id, term, acquiredAt: this.clock.now() };
        if (this.#recording) this.terms.push(rec);
        signal.addEventListener(
          "abort",
          () => {
            rec.lostAt = this.clock.now();
            const reason = (signal.reason as { reason?: LoseReason } | undefined)?.reason;
            if (reason) rec.reason = reason;
          },
          { once: true },
        );
        fence ??= new TermFence({ source: node.elector });
        this.#runActions(node, fence, term, signal, actionEveryMs);
        await opts.onAcquire?.(term, signal);
      },
      onLose: opts.onLose,
    });
    this.nodes.push(node);
    return node;
  }

  /** The leader-only work: records an action whenever the fence says the term is current. */
  #runActions(
    node: SimNode,
    fence: TermFence,
    term: number,
    signal: AbortSignal,
    everyMs: number,
  ): void {
    const loop = async (): Promise<void> => {
      while (!signal.aborted) {
        if (fence.isCurrentTerm(term) && this.#recording) {
          this.actions.push({ nodeId: node.id, term, at: this.clock.now() });
        }
        await node.proc.sleep(everyMs, signal);
      }
    };
    loop().catch(() => undefined);
  }

  async #fetchPeer(addr: string, signal: AbortSignal): Promise<LockRecord | undefined> {
    const target = this.nodes.find((n) => n.addr === addr);
    if (!target || target.peerDown || target.killed) {
      throw new NstanceError("unavailable", `connect ECONNREFUSED ${addr}`);
    }
    await this.clock.sleep(this.#peerLatencyMs / 2, signal);
    await target.proc.waitRunning(signal);
    const rec = target.elector.leaderRecord();
    await this.clock.sleep(this.#peerLatencyMs / 2, signal);
    return rec;
  }

  /** Kills a node as kill -9 would: it runs nothing more and its endpoint refuses connections. */
  kill(node: SimNode): void {
    node.killed = true;
    node.proc.pauseUntil(Number.POSITIVE_INFINITY);
    const now = this.clock.now();
    for (const t of this.terms) {
      if (t.nodeId === node.id && t.lostAt === undefined && t.killedAt === undefined)
        t.killedAt = now;
    }
  }

  /** Nodes that currently consider themselves leader (alive ones only). */
  leaders(): SimNode[] {
    return this.nodes.filter((n) => !n.killed && n.elector.isLeader());
  }

  /** Advances simulated time until `promise` settles (or `maxMs` passes) and returns its result. */
  async settle<T>(promise: Promise<T>, maxMs = 120_000): Promise<T> {
    let done = false;
    const p = promise.finally(() => {
      done = true;
    });
    await this.clock.advanceUntil(() => done, maxMs, 50);
    return p;
  }

  /** Stops recording, revives killed nodes without letting them act, and stops every elector. */
  async stopAll(): Promise<void> {
    this.#recording = false;
    for (const n of this.nodes) {
      n.storage.setFault("none");
      n.proc.resume();
    }
    await this.settle(Promise.all(this.nodes.map((n) => n.elector.stop())), 600_000);
  }
}
