// SPDX-License-Identifier: Apache-2.0
/**
 * Instance IDs (reference §5.1): puidv7 = the template's 3-letter kind + the 16 bytes of a UUIDv7
 * in lowercase Crockford base32 (26 characters), e.g. `knc06bgm7733st2576nx5jht4ecjw` for UUID
 * `01970a1c-e31e-7422-9cd5-e9651d11cc97`. IDs sort by creation time, also within a millisecond.
 */
import { randomBytes } from "node:crypto";
import { NstanceError } from "../shared/errors.js";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";
const DECODE = new Map([...ALPHABET].map((c, i) => [c, i]));
const KIND = /^[a-z]{3}$/;
const ID = /^[a-z]{3}[0-9a-hjkmnp-tv-z]{26}$/;
/** Bits of a UUIDv7 after the 48-bit timestamp and version: 12 (rand_a) + 62 (rand_b). */
const RANDOM_BITS = 74n;
const RANDOM_LIMIT = 1n << RANDOM_BITS;
const RANDOM_MASK = RANDOM_LIMIT - 1n;
/** Largest random step between two IDs of one millisecond (keeps them hard to guess). */
const MAX_STEP = 1n << 32n;

/** An instance ID taken apart. */
export interface ParsedInstanceId {
  /** The 3-letter template kind. */
  kind: string;
  /** The canonical lowercase UUID (8-4-4-4-12). */
  uuid: string;
  /** Creation time (Unix ms) from the UUIDv7 timestamp. */
  createdAt: number;
}

/** Per-process generator state: IDs of one millisecond count up from a random start. */
let lastMs = -1;
let lastRandom = 0n;

function randomBigInt(bytes: number): bigint {
  return BigInt(`0x${randomBytes(bytes).toString("hex")}`);
}

/**
 * Mints a new instance ID for a template kind. Without `now`, IDs from this process are strictly
 * increasing (a clock that steps back reuses the last millisecond). An explicit `now` in the past
 * gives an ID with that creation time, outside the monotonic sequence.
 */
export function newInstanceId(kind: string, now?: number): string {
  if (!KIND.test(kind)) {
    throw new NstanceError(
      "invalid_argument",
      `instance kind must be 3 lowercase letters, got ${JSON.stringify(kind)}`,
    );
  }
  const ms = now ?? Math.max(Date.now(), lastMs);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms >= 2 ** 48) {
    throw new NstanceError("invalid_argument", `instance ID time out of range: ${ms}`);
  }
  let random: bigint;
  let time = ms;
  if (ms === lastMs) {
    random = lastRandom + 1n + (randomBigInt(4) % MAX_STEP);
    if (random >= RANDOM_LIMIT) {
      // The counter space of this millisecond is used up: borrow the next millisecond.
      time = ms + 1;
      random = randomBigInt(10) & (RANDOM_MASK >> 1n);
    }
  } else {
    // Start in the lower half so a millisecond has room for ~2^41 more IDs.
    random = randomBigInt(10) & (RANDOM_MASK >> 1n);
  }
  if (time >= lastMs) {
    lastMs = time;
    lastRandom = random;
  }
  const randA = random >> 62n;
  const randB = random & ((1n << 62n) - 1n);
  const value = (BigInt(time) << 80n) | (7n << 76n) | (randA << 64n) | (2n << 62n) | randB;
  return kind + encodeCrockford(value);
}

/** True when `id` is a well-formed instance ID (3-letter kind + base32 UUIDv7). */
export function isInstanceId(id: string): boolean {
  return tryParse(id) !== undefined;
}

/** Takes an instance ID apart; throws NstanceError `invalid_argument` when it is malformed. */
export function parseInstanceId(id: string): ParsedInstanceId {
  const parsed = tryParse(id);
  if (!parsed) {
    throw new NstanceError(
      "invalid_argument",
      `invalid instance ID ${JSON.stringify(id)}: want 3 lowercase letters + 26 base32 characters of a UUIDv7`,
    );
  }
  return parsed;
}

/**
 * The key part of an instance's storage record name: canonical UUID + `-` + kind, e.g.
 * `01970a1c-e31e-7422-9cd5-e9651d11cc97-knc` (records list in creation order).
 */
export function instanceStorageKey(id: string): string {
  const { kind, uuid } = parseInstanceId(id);
  return `${uuid}-${kind}`;
}

/** The instance ID of a canonical UUIDv7 and kind (the inverse of {@link parseInstanceId}). */
export function instanceIdFromUuid(kind: string, uuid: string): string {
  if (
    !KIND.test(kind) ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid)
  ) {
    throw new NstanceError("invalid_argument", `not a UUIDv7 and kind: ${uuid} ${kind}`);
  }
  return kind + encodeCrockford(BigInt(`0x${uuid.replaceAll("-", "")}`));
}

function tryParse(id: string): ParsedInstanceId | undefined {
  if (!ID.test(id)) return undefined;
  let value = 0n;
  for (const c of id.slice(3)) value = (value << 5n) | BigInt(DECODE.get(c)!);
  // 26 characters carry 130 bits: the last 2 are padding and must be zero in canonical form.
  if ((value & 3n) !== 0n) return undefined;
  value >>= 2n;
  const hex = value.toString(16).padStart(32, "0");
  if (hex[12] !== "7" || !"89ab".includes(hex[16]!)) return undefined;
  return {
    kind: id.slice(0, 3),
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    createdAt: Number(value >> 80n),
  };
}

/** 128 bits → 26 Crockford characters, most significant first, 2 zero bits of padding at the end. */
function encodeCrockford(value: bigint): string {
  let bits = value << 2n;
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = ALPHABET[Number(bits & 31n)]! + out;
    bits >>= 5n;
  }
  return out;
}
