// SPDX-License-Identifier: Apache-2.0
/**
 * Reading a public key an agent submitted: PKIX PEM (what our agent sends and the proto documents),
 * or base64 of the DER (what the Go agent sends, reference §9). Either way the result is a
 * normalised PKIX PEM of an Ed25519 key, the only key type the cluster issues certificates for.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { parseEd25519PublicKey } from "../../pki/ed25519-keys.js";
import { NstanceError } from "../../shared/errors.js";

/** Largest encoded public key accepted (an Ed25519 PEM is about 113 bytes). */
export const DEFAULT_MAX_PUBLIC_KEY_BYTES = 16 * 1024;
/** Key names: a plain base name of letters, digits, `.`, `_`, `-`, not starting with a dot. */
const KEY_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Extension of public key files; a template's `key.name` carries it (`kubelet.server.pub`). */
export const PUBLIC_KEY_SUFFIX = ".pub";

/**
 * The key file name (`<name>.pub`) for a submitted `filename`, which may be the bare key name
 * (`kubelet.server`, as the proto documents) or already carry `.pub` (as our agent sends it).
 * Throws NstanceError `invalid_argument` for a name that is not a plain base name.
 */
export function publicKeyFileName(filename: string): string {
  const base = filename.endsWith(PUBLIC_KEY_SUFFIX)
    ? filename.slice(0, -PUBLIC_KEY_SUFFIX.length)
    : filename;
  if (!KEY_NAME.test(base)) {
    throw new NstanceError(
      "invalid_argument",
      `key name ${JSON.stringify(filename.slice(0, 140))} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'`,
    );
  }
  return base + PUBLIC_KEY_SUFFIX;
}

/** The key name a template's `key.name` asks the agent to generate: `x.pub` → `x`. */
export function keyNameOf(publicKeyFile: string): string {
  return publicKeyFile.endsWith(PUBLIC_KEY_SUFFIX)
    ? publicKeyFile.slice(0, -PUBLIC_KEY_SUFFIX.length)
    : publicKeyFile;
}

function fromBase64Der(text: string): KeyObject | undefined {
  const compact = text.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) return undefined;
  try {
    return createPublicKey({ key: Buffer.from(compact, "base64"), format: "der", type: "spki" });
  } catch {
    return undefined;
  }
}

/**
 * Parses a submitted public key (PKIX PEM or base64 DER) and returns it as PKIX PEM. Throws
 * NstanceError `invalid_argument` when it is too big, unreadable, or not Ed25519.
 */
export function parseSubmittedPublicKey(encoded: Uint8Array): string {
  if (encoded.length === 0) throw new NstanceError("invalid_argument", "public key is empty");
  if (encoded.length > DEFAULT_MAX_PUBLIC_KEY_BYTES) {
    throw new NstanceError(
      "invalid_argument",
      `public key is ${encoded.length} bytes; the limit is ${DEFAULT_MAX_PUBLIC_KEY_BYTES}`,
    );
  }
  const text = Buffer.from(encoded).toString("utf8");
  let key: KeyObject;
  if (text.includes("-----BEGIN")) {
    key = parseEd25519PublicKey(text);
  } else {
    const der = fromBase64Der(text);
    if (!der) {
      throw new NstanceError(
        "invalid_argument",
        "public key is neither a PKIX PEM nor base64 of a PKIX DER public key",
      );
    }
    key = parseEd25519PublicKey(der.export({ type: "spki", format: "pem" }).toString());
  }
  return key.export({ type: "spki", format: "pem" }).toString();
}
