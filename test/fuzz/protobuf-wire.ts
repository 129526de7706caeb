// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the gRPC fuzzers: random protobuf messages at the wire level, schema-agnostic.
 * Fields 1..12 (where every message of the API has its fields) come with every wire type, so a
 * decoder meets both well-typed values (random strings, numbers, nested messages) and mismatches;
 * decoding such bytes with a method's real deserializer and encoding the result again gives a
 * well-formed request of random content. Also: malformed encodings (truncation, bad lengths,
 * nested groups, bit flips) that no valid encoder produces.
 */
import fc from "fast-check";

/** One field on the wire. */
export type WireField =
  | { field: number; wire: 0; value: bigint }
  | { field: number; wire: 1; value: Uint8Array }
  | { field: number; wire: 2; value: Uint8Array | WireField[] }
  | { field: number; wire: 5; value: Uint8Array };

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

/** Encodes fields as protobuf wire bytes. */
export function encodeWire(fields: readonly WireField[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    parts.push(Buffer.from(varint(BigInt(f.field) * 8n + BigInt(f.wire))));
    if (f.wire === 0) parts.push(Buffer.from(varint(f.value)));
    else if (f.wire === 2) {
      const body = Array.isArray(f.value) ? encodeWire(f.value) : Buffer.from(f.value);
      parts.push(Buffer.from(varint(BigInt(body.length))), body);
    } else parts.push(Buffer.from(f.value));
  }
  return Buffer.concat(parts);
}

/** Strings a handler should handle with care: names, paths, PEM, JWT-like, unicode. */
const HOSTILE_STRINGS = [
  "",
  "web",
  "default",
  "web00001",
  "constructor",
  "__proto__",
  "../../etc/passwd",
  "/",
  "a/b",
  "*",
  "%",
  "' OR 1=1 --",
  "\u0000",
  "\ud800",
  "\u202e",
  "x".repeat(300),
  "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
  "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
  "1h",
  "-1s",
  "9999999999999999999",
];

const fieldNumber = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: 13, max: 536_870_911 }) },
);

const stringBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS).map((s) => Buffer.from(s)) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 1_000, max: 300_000 }).map((n) => Buffer.alloc(n, 0x61)),
  },
);

const varintValue = fc.oneof(
  fc.bigInt({ min: 0n, max: 10n }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.constantFrom(0x7fffffffn, 0x80000000n, 0xffffffffn, (1n << 63n) - 1n, 1n << 63n),
);

/** A random message as wire fields, nested up to `depth` levels. */
export const wireMessage: fc.Arbitrary<WireField[]> = fc.letrec<{
  message: WireField[];
  field: WireField;
}>((tie) => ({
  message: fc.array(tie("field"), { maxLength: 8 }),
  field: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.record({ field: fieldNumber, wire: fc.constant(0 as const), value: varintValue }),
    fc.record({
      field: fieldNumber,
      wire: fc.constant(1 as const),
      value: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    }),
    fc.record({ field: fieldNumber, wire: fc.constant(2 as const), value: stringBytes }),
    fc.record({ field: fieldNumber, wire: fc.constant(2 as const), value: tie("message") }),
    fc.record({
      field: fieldNumber,
      wire: fc.constant(5 as const),
      value: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    }),
  ),
})).message;

/** Bytes no valid encoder produces. */
export const malformedWire: fc.Arbitrary<Buffer> = fc.oneof(
  // Random bytes.
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  // A valid message, truncated.
  fc.tuple(wireMessage, fc.nat()).map(([m, cut]) => {
    const b = encodeWire(m);
    return b.subarray(0, b.length === 0 ? 0 : cut % b.length);
  }),
  // A valid message with a few bytes flipped.
  fc
    .tuple(
      wireMessage,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
    )
    .map(([m, flips]) => {
      const b = Buffer.from(encodeWire(m));
      for (const [at, x] of flips) if (b.length > 0) b[at % b.length]! ^= x;
      return b;
    }),
  // A length prefix far beyond the message.
  fc
    .tuple(fc.integer({ min: 1, max: 12 }), fc.bigInt({ min: 1n << 20n, max: 1n << 62n }))
    .map(([f, len]) =>
      Buffer.concat([Buffer.from(varint(BigInt(f) * 8n + 2n)), Buffer.from(varint(len))]),
    ),
  // Deprecated groups nested deep (decoders skip them recursively), and wire types 6 and 7.
  fc
    .integer({ min: 1, max: 200_000 })
    .map((n) => Buffer.concat([Buffer.alloc(n, 0x0b), Buffer.alloc(n, 0x0c)])),
  fc.constantFrom(
    Buffer.from([0x0e, 0x01]),
    Buffer.from([0x0f]),
    Buffer.from([0x00]),
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  ),
);
