// SPDX-License-Identifier: Apache-2.0
/**
 * Per-client token buckets (seed 004's per-IP rate limits): each client address has `burst`
 * tokens that refill at `perSecond`; a request takes one or is refused with the time until the
 * next token. Used by the admin HTTP API and the anonymous Registration service.
 */
import { isIPv4, isIPv6 } from "node:net";

/** A token-bucket budget. */
export interface RateLimit {
  /** Requests allowed at once from an idle client (the bucket's size). */
  burst: number;
  /** Tokens added back per second. */
  perSecond: number;
}

/** One client's bucket. */
export interface TokenBucket {
  tokens: number;
  /** When `tokens` was computed (epoch ms). */
  updatedAt: number;
  /** Set at the first refusal; cleared once the bucket is full again (one episode of limiting). */
  limitedSince?: number;
}

/** The outcome of {@link takeToken}. */
export interface TakeResult {
  allowed: boolean;
  /** Until the next token (0 when allowed). */
  retryAfterMs: number;
  /** True on the first refusal of an episode: log this one, not every refusal of a flood. */
  firstRefusal: boolean;
}

/** Most clients tracked at once; the least recently seen are forgotten first. */
export const DEFAULT_MAX_TRACKED_CLIENTS = 100_000;

/** Throws TypeError unless `burst` is a positive integer and `perSecond` a positive number. */
export function checkRateLimit(limit: RateLimit): RateLimit {
  if (!Number.isInteger(limit.burst) || limit.burst < 1) {
    throw new TypeError(`rate limit burst must be a positive integer, got ${limit.burst}`);
  }
  if (!Number.isFinite(limit.perSecond) || limit.perSecond <= 0) {
    throw new TypeError(`rate limit per second must be positive, got ${limit.perSecond}`);
  }
  return limit;
}

/** Takes one token from `bucket` (a new client starts full) at `now`; pure. */
export function takeToken(
  bucket: TokenBucket | undefined,
  limit: RateLimit,
  now: number,
): { bucket: TokenBucket; result: TakeResult } {
  const elapsedMs = bucket ? Math.max(0, now - bucket.updatedAt) : 0;
  const tokens = bucket
    ? Math.min(limit.burst, bucket.tokens + (elapsedMs * limit.perSecond) / 1000)
    : limit.burst;
  const limitedSince = tokens >= limit.burst ? undefined : bucket?.limitedSince;
  if (tokens >= 1) {
    return {
      bucket: {
        tokens: tokens - 1,
        updatedAt: now,
        ...(limitedSince !== undefined ? { limitedSince } : {}),
      },
      result: { allowed: true, retryAfterMs: 0, firstRefusal: false },
    };
  }
  const retryAfterMs = Math.ceil(((1 - tokens) * 1000) / limit.perSecond);
  return {
    bucket: { tokens, updatedAt: now, limitedSince: limitedSince ?? now },
    result: { allowed: false, retryAfterMs, firstRefusal: limitedSince === undefined },
  };
}

/**
 * The rate-limit key of a client address: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64,
 * since one host usually holds a whole /64. Anything else is used verbatim.
 */
export function clientKey(address: string): string {
  const a = address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (!isIPv6(a)) return a;
  const [head = "", tail = ""] = a.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = a.includes("::")
    ? [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

/** Options for {@link RateLimiter}. */
export interface RateLimiterOptions {
  limit: RateLimit;
  /** See {@link DEFAULT_MAX_TRACKED_CLIENTS}. */
  maxClients?: number;
  now?: () => number;
}

/** Token buckets per client key, least recently seen forgotten first beyond `maxClients`. */
export class RateLimiter {
  readonly #limit: RateLimit;
  readonly #maxClients: number;
  readonly #now: () => number;
  /** Insertion order is recency order: every take re-inserts its key. */
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(opts: RateLimiterOptions) {
    this.#limit = checkRateLimit(opts.limit);
    this.#maxClients = opts.maxClients ?? DEFAULT_MAX_TRACKED_CLIENTS;
    this.#now = opts.now ?? Date.now;
  }

  /** The budget each client gets. */
  get limit(): RateLimit {
    return this.#limit;
  }

  /** Clients tracked now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes a token for the client at `address` (see {@link clientKey}). */
  take(address: string): TakeResult {
    const key = clientKey(address);
    const { bucket, result } = takeToken(this.#buckets.get(key), this.#limit, this.#now());
    this.#buckets.delete(key);
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.#maxClients) {
      const oldest = this.#buckets.keys().next();
      if (!oldest.done) this.#buckets.delete(oldest.value);
    }
    return result;
  }
}
