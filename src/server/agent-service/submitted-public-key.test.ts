// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { generateEd25519KeyPair } from "../../pki/ed25519-keys.js";
import { NstanceError } from "../../shared/errors.js";
import { keyNameOf, parseSubmittedPublicKey, publicKeyFileName } from "./submitted-public-key.js";

const invalid = (re: RegExp) => (err: unknown) =>
  err instanceof NstanceError && err.code === "invalid_argument" && re.test(err.message);

describe("submitted public keys", () => {
  it("accepts PKIX PEM and base64 DER, returning the same PEM", () => {
    const { publicKeyPem } = generateEd25519KeyPair();
    const der = publicKeyPem.replace(/-----[A-Z ]+-----|\n/g, "");
    assert.equal(parseSubmittedPublicKey(Buffer.from(publicKeyPem)), publicKeyPem);
    assert.equal(parseSubmittedPublicKey(Buffer.from(der)), publicKeyPem);
  });

  it("refuses other key types, garbage, empty and oversized input", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    assert.throws(() => parseSubmittedPublicKey(Buffer.from(rsa)), invalid(/must be Ed25519/));
    assert.throws(
      () => parseSubmittedPublicKey(Buffer.from("hello world")),
      invalid(/neither a PKIX PEM/),
    );
    assert.throws(() => parseSubmittedPublicKey(Buffer.alloc(0)), invalid(/empty/));
    assert.throws(() => parseSubmittedPublicKey(Buffer.alloc(20_000, 0x41)), invalid(/limit/));
  });

  it("names key files <name>.pub whether or not the agent sent the suffix", () => {
    assert.equal(publicKeyFileName("kubelet.server"), "kubelet.server.pub");
    assert.equal(publicKeyFileName("kubelet.server.pub"), "kubelet.server.pub");
    assert.equal(keyNameOf("kubelet.server.pub"), "kubelet.server");
    assert.throws(() => publicKeyFileName("../x"), invalid(/key name/));
    assert.throws(() => publicKeyFileName(".pub"), invalid(/key name/));
  });
});
