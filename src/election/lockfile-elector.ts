// SPDX-License-Identifier: Apache-2.0
/**
 * Leader election over object storage: one lockfile per election, taken over and renewed only with
 * conditional writes. Staleness is judged by how long a follower has seen the same lockfile version
 * on its own monotonic clock, and the leader stops acting a safety margin before any follower may
 * judge its lease stale, so clock skew between hosts does not matter (see docs/leader-election.md).
 */
import {
  IllegalStateError,
  isAbortError,
  NstanceError,
  PreconditionFailedError,
} from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import { sleep as defaultSleep } from "../shared/sleep.js";
import type { ObjectStorage, StoredObject } from "../storage/object-storage.js";
import {
  DEFAULT_ELECTION,
  defaultSafetyMarginMs,
  type ElectionTimings,
  renewIntervalMs,
  validateElectionTimings,
} from "./election-timings.js";
import {
  CorruptLockfileError,
  formatLockTime,
  type LockRecord,
  nextLastUpdatedMs,
  parseLockRecord,
  parseLockTime,
  sameLockRecord,
  serializeLockRecord,
} from "./lockfile.js";
import type { TermSource } from "./term-fence.js";

/** Lifecycle of an elector. `candidate` is a takeover write in flight; `resigning` is stepping down. */
export type ElectionState = "stopped" | "follower" | "candidate" | "leader" | "resigning";

/** Why a leadership term ended. */
export type LoseReason =
  /** A renewal lost its conditional write: someone else wrote the lockfile. */
  | "lost_lock"
  /** No renewal succeeded for `leader_timeout - safety_margin`: the leader stepped down by itself. */
  | "renew_timeout"
  /** Graceful stop: the lockfile was marked released. */
  | "resigned"
  /** `onAcquire` failed, so the leader resigned at once. */
  | "acquire_failed";

/** The leader as last observed (from storage, the leader's endpoint, or ourselves). */
export interface LeaderInfo {
  id: string;
  addr: string;
  term: number;
}

/** Storage and peer operations made by an elector, for benchmarks and metrics. */
export interface ElectionStats {
  /** Lockfile GETs (followers' polls, plus a confirming read after an ambiguous write). */
  reads: number;
  /** Conditional PUTs sent, by purpose. */
  writes: { acquire: number; renew: number; release: number };
  /** Storage requests that failed other than by a lost conditional write. */
  storageErrors: number;
  /** Conditional writes lost to another writer. */
  lostRaces: number;
  /** Requests to the leader's election endpoint, and how many of them failed or said "not leader". */
  peerRequests: number;
  peerFailures: number;
  /** Leadership terms won and ended. */
  termsAcquired: number;
  termsLost: number;
}

/** A snapshot for health JSON and logs. */
export interface ElectionStatus {
  state: ElectionState;
  isLeader: boolean;
  /** Our term while leading, else the highest term seen (0 before any). */
  term: number;
  leader: LeaderInfo | undefined;
}

/** Options for {@link LockfileElector}. Timings default to {@link DEFAULT_ELECTION}. */
export interface LockfileElectorOptions extends Partial<ElectionTimings> {
  storage: ObjectStorage;
  /** Lockfile key, e.g. `shard/us-west-2a/leader.json`. */
  key: string;
  /** This server's id (`--id`), written as `leader_id`. */
  id: string;
  /** `host:port` of this server's election endpoint, written as `leader_addr`. */
  advertiseAddr: string;
  /** Monotonic clock in ms. Defaults to `performance.now()`. */
  now?: () => number;
  /** Wall clock in ms (for `last_updated` and a second leader-side check). Defaults to `Date.now()`. */
  wallNow?: () => number;
  /** Abortable sleep on the same clock as `now`. Defaults to a `setTimeout` sleep. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Peer mode: asks the leader's endpoint for its record (`undefined` = "not leader"). When given,
   * followers ask the leader at the frequent interval instead of reading storage, and read storage
   * after any failure.
   */
  fetchPeer?: (leaderAddr: string, signal: AbortSignal) => Promise<LockRecord | undefined>;
  logger?: Logger;
  /**
   * Called when this server becomes leader. Runs beside the renewals; `signal` aborts when the term
   * ends. A rejection (other than after the abort) makes the leader resign at once.
   */
  onAcquire?: (term: number, signal: AbortSignal) => Promise<void> | void;
  /** Called once per term after the term's signal aborted and `onAcquire` settled. */
  onLose?: (term: number, reason: LoseReason) => Promise<void> | void;
}

/** The abort reason of a term's signal. */
export class LeadershipLostError extends NstanceError {
  readonly term: number;
  readonly reason: LoseReason;
  constructor(term: number, reason: LoseReason) {
    super("aborted", `leadership term ${term} ended: ${reason}`);
    this.term = term;
    this.reason = reason;
    this.name = "LeadershipLostError";
  }
}

/** A write whose outcome matters for the lease: what was sent and when (both clocks). */
interface SentWrite {
  record: LockRecord;
  sentAt: number;
  sentWallAt: number;
}

/** The lease while leading. `sentAt` fields are those of the last write known to have landed. */
interface Lease extends SentWrite {
  term: number;
  etag: string;
  /** Renewals whose outcome is unknown (transient error); one of them may have landed. */
  unconfirmed: SentWrite[];
}

/** A lockfile version and when this server first saw it (monotonic). */
interface Observation {
  etag: string;
  firstSeenAt: number;
}

/** The observation key of a missing lockfile (never a real etag: those are hex or quoted). */
const ABSENT = "<absent>";

/** What one follower poll decided. */
type Step = { lease: Lease } | { nextPollMs: number };

/**
 * Elects one leader among servers sharing a lockfile. Only conditional writes change the lockfile:
 * create-only when missing, ifMatch on what was read for a takeover, ifMatch on the last etag for a
 * renewal. A leader makes no storage reads; in peer mode neither do followers while the leader answers.
 */
export class LockfileElector implements TermSource {
  readonly #storage: ObjectStorage;
  readonly #key: string;
  readonly #id: string;
  readonly #addr: string;
  readonly #t: ElectionTimings;
  readonly #renewMs: number;
  readonly #now: () => number;
  readonly #wallNow: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #fetchPeer: LockfileElectorOptions["fetchPeer"];
  readonly #logger: Logger;
  readonly #onAcquire: LockfileElectorOptions["onAcquire"];
  readonly #onLose: LockfileElectorOptions["onLose"];

  #state: ElectionState = "stopped";
  #loop: Promise<void> | undefined;
  #stopCtl: AbortController | undefined;
  #stopping: Promise<void> | undefined;

  #lease: Lease | undefined;
  #termCtl: AbortController | undefined;
  #endTerm: ((reason: LoseReason) => void) | undefined;

  #leaderInfo: LeaderInfo | undefined;
  #highestTerm = 0;
  #obs: Observation | undefined;
  #peerSeen: { record: LockRecord; at: number } | undefined;
  #pendingTakeover: (SentWrite & { term: number }) | undefined;
  #cooldownUntil = Number.NEGATIVE_INFINITY;
  #peerWarnedTerm = 0;
  #lastReadAt = Number.NEGATIVE_INFINITY;
  readonly #stats: ElectionStats = {
    reads: 0,
    writes: { acquire: 0, renew: 0, release: 0 },
    storageErrors: 0,
    lostRaces: 0,
    peerRequests: 0,
    peerFailures: 0,
    termsAcquired: 0,
    termsLost: 0,
  };

  constructor(opts: LockfileElectorOptions) {
    if (!opts?.storage) throw new TypeError("storage is required");
    if (!opts.key) throw new TypeError("key is required");
    if (!opts.id) throw new TypeError("id is required");
    if (typeof opts.advertiseAddr !== "string") throw new TypeError("advertiseAddr is required");
    const leaderTimeoutMs = opts.leaderTimeoutMs ?? DEFAULT_ELECTION.leaderTimeoutMs;
    this.#t = {
      frequentIntervalMs: opts.frequentIntervalMs ?? DEFAULT_ELECTION.frequentIntervalMs,
      infrequentIntervalMs: opts.infrequentIntervalMs ?? DEFAULT_ELECTION.infrequentIntervalMs,
      leaderTimeoutMs,
      safetyMarginMs: opts.safetyMarginMs ?? defaultSafetyMarginMs(leaderTimeoutMs),
    };
    validateElectionTimings(this.#t);
    this.#renewMs = renewIntervalMs(this.#t);
    this.#storage = opts.storage;
    this.#key = opts.key;
    this.#id = opts.id;
    this.#addr = opts.advertiseAddr;
    this.#now = opts.now ?? (() => performance.now());
    this.#wallNow = opts.wallNow ?? Date.now;
    this.#sleep = opts.sleep ?? defaultSleep;
    this.#fetchPeer = opts.fetchPeer;
    this.#logger = (opts.logger ?? silentLogger).child({ election_key: opts.key });
    this.#onAcquire = opts.onAcquire;
    this.#onLose = opts.onLose;
  }

  /** The effective timings (defaults applied). */
  get timings(): Readonly<ElectionTimings> {
    return this.#t;
  }

  /** Current lifecycle state. */
  get state(): ElectionState {
    return this.#state;
  }

  /** Starts electing in the background. Throws IllegalStateError unless stopped. */
  start(): void {
    if (this.#state !== "stopped" || this.#loop) {
      throw new IllegalStateError(`elector cannot start: it is ${this.#state}`);
    }
    const ctl = new AbortController();
    this.#stopCtl = ctl;
    this.#setState("follower");
    this.#loop = this.#run(ctl.signal).catch((err: unknown) => {
      this.#logger.error("Election loop failed", { err });
    });
  }

  /**
   * Stops electing. A leader resigns: its term's signal aborts, `onAcquire` settles and `onLose`
   * runs, then the lockfile is marked released so a standby takes over on its next poll. Idempotent.
   */
  stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return Promise.resolve();
    this.#stopping ??= (async () => {
      this.#stopCtl?.abort();
      await loop;
      this.#loop = undefined;
      this.#stopCtl = undefined;
      this.#stopping = undefined;
      this.#setState("stopped");
    })();
    return this.#stopping;
  }

  /** True while this server leads and its lease has not lapsed (checked against the clock now). */
  isLeader(): boolean {
    const lease = this.#lease;
    const ctl = this.#termCtl;
    if (!lease || !ctl || ctl.signal.aborted) return false;
    if (this.#fenceRemainingMs(lease) <= 0) {
      // The fence timer may not have fired yet (busy event loop); the clock decides, not the timer.
      this.#endTerm?.("renew_timeout");
      return false;
    }
    return true;
  }

  /** True while this server leads under `term`. */
  isCurrentTerm(term: number): boolean {
    return this.isLeader() && this.#lease?.term === term;
  }

  /** The signal of `term` while it is current, else `undefined`. */
  termSignal(term: number): AbortSignal | undefined {
    return this.isCurrentTerm(term) ? this.#termCtl?.signal : undefined;
  }

  /** The signal of the current term (aborts when it ends), or `undefined` when not leading. */
  leaderSignal(): AbortSignal | undefined {
    return this.isLeader() ? this.#termCtl?.signal : undefined;
  }

  /** Our term while leading, else the highest term this server has seen (0 before any). */
  currentTerm(): number {
    return this.#highestTerm;
  }

  /** The leader as last observed, or `undefined` when none is known (missing or released lockfile). */
  leader(): LeaderInfo | undefined {
    return this.#leaderInfo ? { ...this.#leaderInfo } : undefined;
  }

  /** The lockfile record as last written, while leading; what the election endpoint serves. */
  leaderRecord(): LockRecord | undefined {
    return this.isLeader() && this.#lease ? { ...this.#lease.record } : undefined;
  }

  /** State, leadership and term for health JSON. */
  status(): ElectionStatus {
    const isLeader = this.isLeader();
    return { state: this.#state, isLeader, term: this.#highestTerm, leader: this.leader() };
  }

  /** Counters of storage and peer operations since construction. */
  stats(): ElectionStats {
    return { ...this.#stats, writes: { ...this.#stats.writes } };
  }

  // --- the loop ---------------------------------------------------------------------------

  async #run(stop: AbortSignal): Promise<void> {
    let delayMs = 0;
    while (!stop.aborted) {
      if (delayMs > 0) {
        try {
          await this.#sleep(delayMs, stop);
        } catch {
          break;
        }
      }
      if (stop.aborted) break;
      let step: Step;
      try {
        step = await this.#poll(stop);
      } catch (err) {
        // Only a bug gets here; keep electing rather than leave the server without a leader.
        this.#logger.error("Election poll failed", { err });
        this.#setState("follower");
        step = { nextPollMs: this.#t.frequentIntervalMs };
      }
      if ("lease" in step) {
        const reason = await this.#lead(step.lease, stop);
        delayMs = reason === "lost_lock" ? 0 : this.#t.frequentIntervalMs;
      } else {
        delayMs = step.nextPollMs;
      }
    }
  }

  async #poll(stop: AbortSignal): Promise<Step> {
    if (this.#fetchPeer) {
      const step = await this.#askPeer(stop);
      if (step) return step;
    }
    return this.#readStorage(stop);
  }

  /** Peer mode: the leader vouches for itself; `undefined` means "read storage instead". */
  async #askPeer(stop: AbortSignal): Promise<Step | undefined> {
    const leader = this.#leaderInfo;
    if (!leader || leader.id === this.#id || leader.addr === "" || !this.#fetchPeer) {
      return undefined;
    }
    const fetchPeer = this.#fetchPeer;
    this.#stats.peerRequests++;
    let rec: LockRecord | undefined;
    try {
      rec = await this.#withTimeout(this.#t.frequentIntervalMs, stop, "peer request", (s) =>
        fetchPeer(leader.addr, s),
      );
    } catch (err) {
      if (stop.aborted) return { nextPollMs: 0 };
      this.#stats.peerFailures++;
      this.#logger.debug("Leader endpoint did not answer; reading storage", {
        leader_addr: leader.addr,
        err,
      });
      return undefined;
    }
    if (!rec || rec.released || rec.term < this.#highestTerm) {
      this.#stats.peerFailures++;
      this.#logger.debug("Leader endpoint says it is not leader; reading storage", {
        leader_addr: leader.addr,
      });
      return undefined;
    }
    this.#peerSeen = { record: rec, at: this.#now() };
    this.#noteLeader(rec);
    this.#setState("follower");
    return { nextPollMs: this.#t.frequentIntervalMs };
  }

  async #readStorage(stop: AbortSignal): Promise<Step> {
    const t = this.#t;
    let obj: StoredObject | undefined;
    this.#stats.reads++;
    try {
      obj = await this.#withTimeout(this.#requestTimeoutMs(), stop, "read", (s) =>
        this.#storage.get(this.#key, s),
      );
    } catch (err) {
      if (stop.aborted) return { nextPollMs: 0 };
      this.#stats.storageErrors++;
      this.#logger.warn("Reading the leader lockfile failed", { err });
      this.#setState("follower");
      return { nextPollMs: t.frequentIntervalMs };
    }
    const now = this.#now();
    const previousReadAt = this.#lastReadAt;
    this.#lastReadAt = now;
    const pending = this.#pendingTakeover;
    this.#pendingTakeover = undefined;
    // A missing lockfile is a version too ("absent"): it may have been deleted under a live
    // leader, which keeps acting until its next renewal fails, so it must stay absent for the
    // leader timeout before a create-only takeover.
    const etag = obj?.etag ?? ABSENT;
    let rec: LockRecord | undefined;
    let term = 0;
    if (obj) {
      try {
        rec = parseLockRecord(obj.body);
        term = rec.term;
      } catch (err) {
        if (!(err instanceof CorruptLockfileError)) throw err;
        term = err.salvagedTerm ?? 0;
        if (this.#obs?.etag !== etag) {
          this.#logger.error(
            "Leader lockfile is corrupt; it is taken over once unchanged for the leader timeout",
            { err },
          );
        }
      }
    } else if (this.#leaderInfo) {
      this.#logger.warn(
        "Leader lockfile is missing; taking over once it stays missing for the leader timeout",
      );
    }

    // Our own takeover whose answer was lost (or retried into a conflict) may have landed after all.
    if (pending && rec && sameLockRecord(rec, pending.record)) {
      if (now - pending.sentAt < t.leaderTimeoutMs - t.safetyMarginMs) {
        return { lease: { ...pending, etag: etag, unconfirmed: [] } };
      }
    }

    let alive = false;
    if (this.#obs?.etag !== etag) {
      // A version that replaced one we saw at our previous (recent) read was written since: its
      // writer was alive a moment ago. An old observation (peer mode) proves nothing.
      alive =
        this.#obs !== undefined &&
        now - previousReadAt <= this.#t.infrequentIntervalMs + this.#t.leaderTimeoutMs;
      let firstSeenAt = now;
      // The leader served this very version to us earlier: it existed (and was its latest) then.
      if (rec && this.#peerSeen && sameLockRecord(rec, this.#peerSeen.record)) {
        firstSeenAt = Math.min(now, this.#peerSeen.at);
      }
      this.#obs = { etag: etag, firstSeenAt };
    }
    this.#highestTerm = Math.max(this.#highestTerm, term);
    if (rec && !rec.released) {
      this.#noteLeader(rec);
    } else {
      if (rec?.released && this.#leaderInfo) {
        this.#logger.info("Leader resigned", { leader_id: rec.leader_id, term: rec.term });
      }
      this.#leaderInfo = undefined;
    }

    const ageMs = now - this.#obs.firstSeenAt;
    if (rec?.released || ageMs >= t.leaderTimeoutMs) {
      if (now < this.#cooldownUntil) {
        this.#setState("follower");
        return { nextPollMs: Math.min(t.frequentIntervalMs, this.#cooldownUntil - now) };
      }
      if (rec && !rec.released) {
        this.#logger.info("Leader lease is stale; taking over", {
          leader_id: rec.leader_id,
          term: rec.term,
          unchanged_ms: Math.round(ageMs),
        });
      }
      return this.#tryTakeOver(obj ? etag : undefined, term);
    }
    this.#setState("follower");
    if (!this.#fetchPeer && alive && rec && this.#looksRecent(rec)) {
      return { nextPollMs: t.infrequentIntervalMs };
    }
    if (this.#fetchPeer && alive && rec && rec.term > this.#peerWarnedTerm) {
      // Storage shows a live leader that its endpoint did not confirm: reads go on at the frequent
      // interval until the endpoint answers again.
      this.#peerWarnedTerm = rec.term;
      this.#logger.warn("Leader is renewing but its election endpoint does not answer", {
        leader_id: rec.leader_id,
        leader_addr: rec.leader_addr,
        term: rec.term,
      });
    }
    return { nextPollMs: Math.max(0, Math.min(t.frequentIntervalMs, t.leaderTimeoutMs - ageMs)) };
  }

  /** Conditional write of a new term against what was read (create-only when there was nothing). */
  async #tryTakeOver(etag: string | undefined, previousTerm: number): Promise<Step> {
    const t = this.#t;
    this.#setState("candidate");
    const term = Math.max(previousTerm, this.#highestTerm) + 1;
    const record: LockRecord = {
      leader_id: this.#id,
      leader_addr: this.#addr,
      last_updated: formatLockTime(this.#wallNow()),
      term,
      released: false,
    };
    const sent: SentWrite = { record, sentAt: this.#now(), sentWallAt: this.#wallNow() };
    this.#stats.writes.acquire++;
    let newEtag: string;
    try {
      // Not tied to `stop`: an aborted request may still land, and then we would hold a lease
      // without knowing it. Finishing it lets a stopping elector release what it won.
      newEtag = await this.#withTimeout(this.#requestTimeoutMs(), undefined, "takeover", (s) =>
        this.#storage.put(this.#key, serializeLockRecord(record), {
          condition: etag === undefined ? { ifNoneMatch: "*" } : { ifMatch: etag },
          contentType: "application/json",
          signal: s,
        }),
      );
    } catch (err) {
      this.#pendingTakeover = { ...sent, term };
      this.#setState("follower");
      if (err instanceof PreconditionFailedError) {
        this.#stats.lostRaces++;
        this.#logger.debug("Lost the race for leadership", { term });
        return { nextPollMs: 0 };
      }
      this.#stats.storageErrors++;
      this.#logger.warn("Taking over the leader lockfile failed", { term, err });
      return { nextPollMs: t.frequentIntervalMs };
    }
    this.#highestTerm = Math.max(this.#highestTerm, term);
    if (this.#now() - sent.sentAt >= t.leaderTimeoutMs - t.safetyMarginMs) {
      // The lease was already over by the time we heard we had it; let it lapse and retry later.
      this.#logger.warn("Takeover write was acknowledged too late to lead", { term });
      this.#setState("follower");
      this.#obs = undefined;
      return { nextPollMs: t.frequentIntervalMs };
    }
    return { lease: { ...sent, term, etag: newEtag, unconfirmed: [] } };
  }

  // --- leading ----------------------------------------------------------------------------

  async #lead(lease: Lease, stop: AbortSignal): Promise<LoseReason> {
    const { term } = lease;
    this.#obs = undefined;
    this.#peerSeen = undefined;
    this.#pendingTakeover = undefined;
    this.#leaderInfo = { id: this.#id, addr: this.#addr, term };
    if (stop.aborted) {
      // Won a takeover while stopping: hand it straight back without acting.
      this.#setState("resigning");
      await this.#release(lease);
      return "resigned";
    }

    const termCtl = new AbortController();
    const signal = termCtl.signal;
    const ended: { reason: LoseReason } = { reason: "resigned" };
    const end = (r: LoseReason): void => {
      if (signal.aborted) return;
      ended.reason = r;
      this.#setState(r === "resigned" || r === "acquire_failed" ? "resigning" : "follower");
      termCtl.abort(new LeadershipLostError(term, r));
      this.#stats.termsLost++;
      const attrs = { term, reason: r };
      if (r === "resigned") this.#logger.info("Leadership released", attrs);
      else this.#logger.warn("Leadership lost", attrs);
    };
    this.#lease = lease;
    this.#termCtl = termCtl;
    this.#endTerm = end;
    this.#stats.termsAcquired++;
    this.#setState("leader");
    this.#logger.info("Leadership acquired", {
      term,
      leader_id: this.#id,
      leader_addr: this.#addr,
    });

    const fenceTask = this.#watchFence(lease, signal, end);
    const acquireTask = this.#runOnAcquire(term, signal, end);
    const onStop = (): void => end("resigned");
    stop.addEventListener("abort", onStop, { once: true });
    if (stop.aborted) onStop();
    try {
      await this.#renewLoop(lease, signal, end);
    } finally {
      stop.removeEventListener("abort", onStop);
    }
    await Promise.all([fenceTask, acquireTask]);
    this.#lease = undefined;
    this.#termCtl = undefined;
    this.#endTerm = undefined;
    if (this.#onLose) {
      try {
        await this.#onLose(term, ended.reason);
      } catch (err) {
        this.#logger.error("Leadership lost handler failed", { term, err });
      }
    }
    const final = ended.reason;
    if (final === "resigned" || final === "acquire_failed") await this.#release(lease);
    if (final === "acquire_failed") this.#cooldownUntil = this.#now() + this.#t.leaderTimeoutMs;
    if (!stop.aborted) this.#setState("follower");
    return final;
  }

  /** Ends the term when the lease could have lapsed; the clock is re-read after every wake-up. */
  async #watchFence(
    lease: Lease,
    signal: AbortSignal,
    end: (r: LoseReason) => void,
  ): Promise<void> {
    while (!signal.aborted) {
      const leftMs = this.#fenceRemainingMs(lease);
      if (leftMs <= 0) {
        end("renew_timeout");
        return;
      }
      try {
        await this.#sleep(leftMs, signal);
      } catch {
        return;
      }
    }
  }

  async #runOnAcquire(
    term: number,
    signal: AbortSignal,
    end: (r: LoseReason) => void,
  ): Promise<void> {
    if (!this.#onAcquire) return;
    try {
      await this.#onAcquire(term, signal);
    } catch (err) {
      if (signal.aborted) {
        if (!isAbortError(err) && !(err instanceof LeadershipLostError)) {
          this.#logger.debug("Leader start-up ended with an error after the term ended", {
            term,
            err,
          });
        }
        return;
      }
      this.#logger.error("Leader start-up failed; resigning", { term, err });
      end("acquire_failed");
    }
  }

  async #renewLoop(lease: Lease, signal: AbortSignal, end: (r: LoseReason) => void): Promise<void> {
    let retryAt: number | undefined;
    while (!signal.aborted) {
      const waitMs = (retryAt ?? lease.sentAt + this.#renewMs) - this.#now();
      if (waitMs > 0) {
        try {
          await this.#sleep(waitMs, signal);
        } catch {
          return;
        }
      }
      if (signal.aborted) return;
      const record: LockRecord = {
        ...lease.record,
        last_updated: formatLockTime(nextLastUpdatedMs(lease.record.last_updated, this.#wallNow())),
      };
      const sent: SentWrite = { record, sentAt: this.#now(), sentWallAt: this.#wallNow() };
      this.#stats.writes.renew++;
      try {
        const etag = await this.#withTimeout(
          Math.max(1, this.#fenceRemainingMs(lease)),
          signal,
          "renew",
          (s) =>
            this.#storage.put(this.#key, serializeLockRecord(record), {
              condition: { ifMatch: lease.etag },
              contentType: "application/json",
              signal: s,
            }),
        );
        if (signal.aborted) return;
        this.#acceptRenewal(lease, sent, etag);
        retryAt = undefined;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof PreconditionFailedError) {
          // A retried request whose first attempt landed also ends here: look before giving up.
          const landed = await this.#confirmOwnWrite([sent, ...lease.unconfirmed], signal);
          if (signal.aborted) return;
          if (landed) {
            this.#acceptRenewal(lease, landed.write, landed.etag);
            retryAt = undefined;
            continue;
          }
          this.#stats.lostRaces++;
          end("lost_lock");
          return;
        }
        this.#stats.storageErrors++;
        lease.unconfirmed.push(sent);
        this.#logger.warn("Renewing the leader lease failed; retrying", {
          term: lease.term,
          remaining_ms: Math.round(this.#fenceRemainingMs(lease)),
          err,
        });
        retryAt = this.#now() + Math.max(1, Math.round(this.#renewMs / 4));
      }
    }
  }

  #acceptRenewal(lease: Lease, write: SentWrite, etag: string): void {
    lease.etag = etag;
    lease.record = write.record;
    if (write.sentAt > lease.sentAt) lease.sentAt = write.sentAt;
    if (write.sentWallAt > lease.sentWallAt) lease.sentWallAt = write.sentWallAt;
    lease.unconfirmed = [];
  }

  /** Reads the lockfile to learn whether one of `writes` landed (content is unique per write). */
  async #confirmOwnWrite(
    writes: SentWrite[],
    signal: AbortSignal,
  ): Promise<{ write: SentWrite; etag: string } | undefined> {
    this.#stats.reads++;
    try {
      const obj = await this.#withTimeout(this.#requestTimeoutMs(), signal, "read", (s) =>
        this.#storage.get(this.#key, s),
      );
      if (!obj) return undefined;
      const rec = parseLockRecord(obj.body);
      const write = writes.find((w) => sameLockRecord(w.record, rec));
      return write ? { write, etag: obj.etag } : undefined;
    } catch (err) {
      if (!signal.aborted) this.#logger.debug("Confirming a lockfile write failed", { err });
      return undefined;
    }
  }

  /** Marks our lockfile released (ifMatch our last etag) so a standby takes over on its next poll. */
  async #release(lease: Lease): Promise<void> {
    const record: LockRecord = {
      ...lease.record,
      last_updated: formatLockTime(nextLastUpdatedMs(lease.record.last_updated, this.#wallNow())),
      released: true,
    };
    this.#stats.writes.release++;
    try {
      const etag = await this.#withTimeout(this.#requestTimeoutMs(), undefined, "release", (s) =>
        this.#storage.put(this.#key, serializeLockRecord(record), {
          condition: { ifMatch: lease.etag },
          contentType: "application/json",
          signal: s,
        }),
      );
      this.#obs = { etag, firstSeenAt: this.#now() };
      this.#logger.info("Released the leader lockfile", { term: lease.term });
    } catch (err) {
      if (err instanceof PreconditionFailedError) {
        this.#stats.lostRaces++;
        this.#logger.info("Leader lockfile changed before it could be released", {
          term: lease.term,
        });
      } else {
        this.#stats.storageErrors++;
        this.#logger.warn(
          "Releasing the leader lockfile failed; standbys take over after the timeout",
          {
            term: lease.term,
            err,
          },
        );
      }
    }
    this.#leaderInfo = undefined;
  }

  // --- helpers ----------------------------------------------------------------------------

  /**
   * Time left before the leader must stop acting: leader_timeout - safety_margin after the last
   * successful renewal was sent. Both clocks are checked and the earlier deadline wins: the monotonic
   * clock ignores wall-clock steps, and the wall clock keeps counting across a host suspend, during
   * which the monotonic clock stands still.
   */
  #fenceRemainingMs(lease: Lease): number {
    const budget = this.#t.leaderTimeoutMs - this.#t.safetyMarginMs;
    return Math.min(
      lease.sentAt + budget - this.#now(),
      lease.sentWallAt + budget - this.#wallNow(),
    );
  }

  /**
   * Scheduling hint only, never a safety decision: a version whose `last_updated` is older (by our
   * wall clock) than a renewal plus a poll probably comes from a dead leader, so the next read comes
   * at the frequent interval instead of the infrequent one. Skewed clocks cost reads, not safety.
   */
  #looksRecent(rec: LockRecord): boolean {
    const writtenAt = parseLockTime(rec.last_updated);
    return (
      writtenAt !== undefined &&
      this.#wallNow() - writtenAt <= this.#renewMs + this.#t.frequentIntervalMs
    );
  }

  #requestTimeoutMs(): number {
    return this.#t.leaderTimeoutMs - this.#t.safetyMarginMs;
  }

  #noteLeader(rec: LockRecord): void {
    const prev = this.#leaderInfo;
    if (!prev || prev.id !== rec.leader_id || prev.term !== rec.term) {
      this.#logger.info("Following leader", {
        leader_id: rec.leader_id,
        leader_addr: rec.leader_addr,
        term: rec.term,
      });
    }
    this.#leaderInfo = { id: rec.leader_id, addr: rec.leader_addr, term: rec.term };
    this.#highestTerm = Math.max(this.#highestTerm, rec.term);
  }

  #setState(state: ElectionState): void {
    if (this.#state === state) return;
    this.#logger.debug("Election state changed", { from: this.#state, to: state });
    this.#state = state;
  }

  /** Runs `fn` with a signal that aborts on `parent` or after `ms` on the elector's own clock. */
  async #withTimeout<T>(
    ms: number,
    parent: AbortSignal | undefined,
    what: string,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const ctl = new AbortController();
    const onParent = (): void => ctl.abort(parent?.reason);
    if (parent?.aborted) ctl.abort(parent.reason);
    parent?.addEventListener("abort", onParent, { once: true });
    const timer = new AbortController();
    const timed = this.#sleep(ms, timer.signal).then(
      () =>
        ctl.abort(
          new NstanceError(
            "deadline_exceeded",
            `election ${what} timed out after ${Math.round(ms)}ms`,
          ),
        ),
      () => undefined,
    );
    try {
      return await fn(ctl.signal);
    } finally {
      timer.abort();
      parent?.removeEventListener("abort", onParent);
      await timed;
    }
  }
}

/** Names a leader for messages such as "not the leader; the leader is …". */
export function describeLeader(info: LeaderInfo | undefined): string {
  return info ? `${info.id} (${info.addr || "no address"}, term ${info.term})` : "unknown";
}
