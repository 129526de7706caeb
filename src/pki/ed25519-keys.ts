// SPDX-License-Identifier: Apache-2.0
/**
 * Ed25519 key handling. Every key in the cluster is Ed25519 (CA, servers, agents, operators, the
 * nonce signing key), so other key types are refused at the edges with a clear message.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  webcrypto,
} from "node:crypto";
import { NstanceError } from "../shared/errors.js";

/** A PEM-encoded key pair: PKCS#8 private key and PKIX (SPKI) public key. */
export interface Ed25519KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** Generates an Ed25519 key pair as PEM. */
export function generateEd25519KeyPair(): Ed25519KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/**
 * Parses a PKIX (SPKI) PEM public key and checks that it is Ed25519. Throws NstanceError
 * `invalid_argument` for anything else, naming the key type found.
 */
export function parseEd25519PublicKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new NstanceError("invalid_argument", "public key is not a valid PKIX PEM public key", {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new NstanceError(
      "invalid_argument",
      `public key must be Ed25519, got ${key.asymmetricKeyType ?? "unknown key type"}`,
    );
  }
  return key;
}

/** Parses a PKCS#8 PEM private key and checks that it is Ed25519 (NstanceError `invalid_argument`). */
export function parseEd25519PrivateKey(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: "pem" });
  } catch (err) {
    throw new NstanceError("invalid_argument", "private key is not a valid PEM private key", {
      cause: err,
    });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new NstanceError(
      "invalid_argument",
      `private key must be Ed25519, got ${key.asymmetricKeyType ?? "unknown key type"}`,
    );
  }
  return key;
}

/** DER SPKI bytes of a public key, or of the public half of a private key. */
export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ type: "spki", format: "der" });
}

/** Converts a node KeyObject to a WebCrypto Ed25519 CryptoKey (for `@peculiar/x509`). */
export function toCryptoKey(key: KeyObject): Promise<webcrypto.CryptoKey> {
  // Node 20 has no KeyObject.toCryptoKey(); go through DER.
  if (key.type === "private") {
    const der = key.export({ type: "pkcs8", format: "der" });
    return webcrypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
  }
  return webcrypto.subtle.importKey("spki", spkiDer(key), { name: "Ed25519" }, true, ["verify"]);
}
