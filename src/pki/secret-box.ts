// SPDX-License-Identifier: Apache-2.0
/**
 * Encryption of secrets at rest (CA key, nonce signing key, operator secrets): AES-256-GCM, stored
 * as `12-byte nonce ‖ ciphertext ‖ 16-byte tag`, the reference's format.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { NstanceError } from "../shared/errors.js";

/** AES-256 key length in bytes. */
export const ENCRYPTION_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Options for {@link SecretBox}. */
export interface SecretBoxOptions {
  /** Encrypts new blobs and is tried first when decrypting; exactly 32 bytes. */
  key: Buffer;
  /** Older keys, tried in order to decrypt only (key rotation); each exactly 32 bytes. */
  decryptOnlyKeys?: readonly Buffer[];
}

function checkKey(key: Buffer, what: string): void {
  if (key.length !== ENCRYPTION_KEY_BYTES) {
    throw new NstanceError(
      "invalid_argument",
      `${what} must be exactly ${ENCRYPTION_KEY_BYTES} bytes, got ${key.length}`,
    );
  }
}

/** Seals and opens secrets with AES-256-GCM under a current key and optional older keys. */
export class SecretBox {
  readonly #key: Buffer;
  readonly #keys: readonly Buffer[];

  constructor(opts: SecretBoxOptions) {
    checkKey(opts.key, "encryption key");
    for (const k of opts.decryptOnlyKeys ?? []) checkKey(k, "decrypt-only encryption key");
    this.#key = Buffer.from(opts.key);
    this.#keys = [this.#key, ...(opts.decryptOnlyKeys ?? []).map((k) => Buffer.from(k))];
  }

  /** Encrypts with the current key under a fresh random nonce. */
  encrypt(plaintext: Buffer | string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, nonce);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]);
  }

  /**
   * Decrypts a blob, trying the current key and then each decrypt-only key. Throws NstanceError
   * `internal` when the blob is truncated or no key authenticates it (wrong key or tampering).
   */
  decrypt(blob: Buffer): Buffer {
    if (blob.length < NONCE_BYTES + TAG_BYTES) {
      throw new NstanceError("internal", `encrypted secret is truncated (${blob.length} bytes)`);
    }
    const nonce = blob.subarray(0, NONCE_BYTES);
    const body = blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES);
    const tag = blob.subarray(blob.length - TAG_BYTES);
    for (const key of this.#keys) {
      const decipher = createDecipheriv("aes-256-gcm", key, nonce);
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(body), decipher.final()]);
      } catch {
        // Authentication failed under this key: try the next one.
      }
    }
    throw new NstanceError(
      "internal",
      `cannot decrypt secret: none of the ${this.#keys.length} configured encryption keys fits`,
    );
  }
}

/** Where the encryption key comes from. */
export interface EncryptionKeySource {
  /** `env`: an environment variable; `file`: a file. */
  provider: "env" | "file";
  /** The variable name or the file path. */
  source: string;
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/**
 * Decodes key material: exactly 32 raw bytes; or, after trimming ASCII whitespace, 32 raw bytes,
 * 64 hex digits, or base64 of 32 bytes. Raw keys are what the reference reads; hex and base64 let
 * a random key live in an environment variable or a text file.
 */
function decodeKey(raw: Buffer, where: string): Buffer {
  if (raw.length === ENCRYPTION_KEY_BYTES) return Buffer.from(raw);
  // Trim bytewise: decoding binary key bytes as text would change them.
  let start = 0;
  let end = raw.length;
  while (start < end && isSpace(raw[start]!)) start++;
  while (end > start && isSpace(raw[end - 1]!)) end--;
  const trimmed = raw.subarray(start, end);
  if (trimmed.length === ENCRYPTION_KEY_BYTES) return Buffer.from(trimmed);
  const text = trimmed.toString("latin1");
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) return Buffer.from(text, "base64");
  throw new NstanceError(
    "invalid_argument",
    `encryption key from ${where} must be ${ENCRYPTION_KEY_BYTES} bytes (raw, 64 hex digits or ` +
      `base64), got ${trimmed.length} bytes`,
  );
}

/**
 * Loads an encryption key from an environment variable or a file. Throws NstanceError
 * `invalid_argument` naming the missing variable, the unreadable file, or the actual length of a
 * key that is not 32 bytes. The key itself never appears in a message.
 */
export async function loadEncryptionKey(
  source: EncryptionKeySource,
  env: Readonly<Record<string, string | undefined>>,
): Promise<Buffer> {
  switch (source.provider) {
    case "env": {
      const value = env[source.source];
      if (value === undefined || value === "") {
        throw new NstanceError(
          "invalid_argument",
          `encryption key environment variable ${source.source} is not set`,
        );
      }
      return decodeKey(Buffer.from(value, "utf8"), `environment variable ${source.source}`);
    }
    case "file": {
      let raw: Buffer;
      try {
        raw = await readFile(source.source);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error";
        throw new NstanceError(
          "invalid_argument",
          `cannot read encryption key file ${source.source}: ${code}`,
          { cause: err },
        );
      }
      return decodeKey(raw, `file ${source.source}`);
    }
  }
}
