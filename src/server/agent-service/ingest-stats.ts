// SPDX-License-Identifier: Apache-2.0
/**
 * Counters and a latency window of the health-report ingest path, for the server's metrics and the
 * ingest benchmark: reports stored, refused, and how long each took from arrival to commit.
 */

/** Latency samples kept (a ring buffer; older samples are overwritten). */
export const DEFAULT_LATENCY_SAMPLES = 100_000;

/** A point-in-time view of {@link IngestStats}. */
export interface IngestSnapshot {
  /** Reports committed to SQLite since start. */
  stored: number;
  /** Reports refused (invalid, wrong instance, not leader). */
  refused: number;
  /** Reports not stored because too many waited for SQLite (overload). */
  shed: number;
  /** Median arrival → commit latency over the window, in ms. */
  p50Ms: number;
  /** 99th percentile arrival → commit latency over the window, in ms. */
  p99Ms: number;
  /** Samples the percentiles are computed from. */
  samples: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Ingest counters; cheap enough to update on every report. */
export class IngestStats {
  readonly #window: Float64Array;
  #next = 0;
  #filled = 0;
  #stored = 0;
  #refused = 0;
  #shed = 0;

  constructor(opts: { samples?: number } = {}) {
    this.#window = new Float64Array(opts.samples ?? DEFAULT_LATENCY_SAMPLES);
  }

  /** Records one committed report and its arrival → commit latency. */
  stored(latencyMs: number): void {
    this.#stored++;
    this.#window[this.#next] = latencyMs;
    this.#next = (this.#next + 1) % this.#window.length;
    if (this.#filled < this.#window.length) this.#filled++;
  }

  /** Records one refused report. */
  refused(): void {
    this.#refused++;
  }

  /** Records one report shed under overload. */
  shed(): void {
    this.#shed++;
  }

  /** Forgets the latency window (counters stay); the benchmark calls it between phases. */
  resetLatency(): void {
    this.#next = 0;
    this.#filled = 0;
  }

  /** Current counters and percentiles. */
  snapshot(): IngestSnapshot {
    const sorted = this.#window.slice(0, this.#filled).sort();
    return {
      stored: this.#stored,
      refused: this.#refused,
      shed: this.#shed,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      samples: sorted.length,
    };
  }
}
