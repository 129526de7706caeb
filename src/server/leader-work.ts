// SPDX-License-Identifier: Apache-2.0
/**
 * Runs the leader-only loops for one leadership term. Every action carries the term it started under
 * and is skipped once the term has moved on; each is logged (debug) with its term and wall-clock
 * interval, which the failover tests use to prove that no two terms ever act at once.
 */
import { errorMessage, isAbortError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { ObjectStorage } from "../storage/object-storage.js";

/** What a leader loop gets for one pass. */
export interface LeaderContext {
  term: number;
  /** Aborts when the term ends. */
  signal: AbortSignal;
  /** Storage whose writes are checked against the term right before they are sent. */
  storage: ObjectStorage;
}

/** A periodic leader-only task. */
export interface LeaderLoop {
  name: string;
  intervalMs: number;
  /** One pass under the given term. */
  run(ctx: LeaderContext): Promise<void>;
}

/** Answers whether `term` is still this server's current leadership term. */
export type TermCheck = (term: number) => boolean;

/** Runs {@link LeaderLoop}s for the duration of one term (until `signal` aborts). */
export async function runLeaderLoops(
  loops: readonly LeaderLoop[],
  ctx: LeaderContext,
  isCurrentTerm: TermCheck,
  logger: Logger,
): Promise<void> {
  const { term, signal } = ctx;
  await Promise.all(
    loops.map(async (loop) => {
      while (!signal.aborted) {
        if (!isCurrentTerm(term)) return;
        const startedAt = Date.now();
        try {
          await loop.run(ctx);
          logger.debug("Leader action", {
            action: loop.name,
            term,
            started_at: startedAt,
            ended_at: Date.now(),
          });
        } catch (err) {
          if (signal.aborted || isAbortError(err)) return;
          logger.warn("Leader action failed", { action: loop.name, term, err: errorMessage(err) });
        }
        try {
          await sleep(loop.intervalMs, signal);
        } catch {
          return;
        }
      }
    }),
  );
}
