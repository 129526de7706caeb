// SPDX-License-Identifier: Apache-2.0
/**
 * Runs the leader-only loops for one leadership term. Every action carries the term it started under
 * and is skipped once the term has moved on; each is logged (debug) with its term and wall-clock
 * interval, which the failover tests use to prove that no two terms ever act at once.
 */
import { errorMessage, isAbortError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";

/** A periodic leader-only task. */
export interface LeaderLoop {
  name: string;
  intervalMs: number;
  /** One pass; `signal` aborts when the term ends. */
  run(term: number, signal: AbortSignal): Promise<void>;
}

/** Answers whether `term` is still this server's current leadership term. */
export type TermCheck = (term: number) => boolean;

/** Runs {@link LeaderLoop}s for the duration of one term (until `signal` aborts). */
export async function runLeaderLoops(
  loops: readonly LeaderLoop[],
  term: number,
  isCurrentTerm: TermCheck,
  logger: Logger,
  signal: AbortSignal,
): Promise<void> {
  await Promise.all(
    loops.map(async (loop) => {
      while (!signal.aborted) {
        if (!isCurrentTerm(term)) return;
        const startedAt = Date.now();
        try {
          await loop.run(term, signal);
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
