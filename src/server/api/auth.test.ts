// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { createTestPki, issueTestClientCertificate, type TestPki } from "../../pki/testing.js";
import { x509 } from "../../pki/x509.js";
import type { CallWithAuthContext } from "../../protocol/peer-certificate.js";
import { NstanceError } from "../../shared/errors.js";
import { Authenticator } from "./auth.js";

const callWith = (der: Buffer | undefined): CallWithAuthContext => ({
  getAuthContext: () =>
    ({ sslPeerCertificate: der ? { raw: der } : undefined }) as ReturnType<
      CallWithAuthContext["getAuthContext"]
    >,
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof NstanceError);
    return err.code;
  }
};

describe("Authenticator", () => {
  let pki: TestPki;
  let agentDer: Buffer;
  before(async () => {
    pki = await createTestPki();
    const cert = await issueTestClientCertificate(pki.ca, {
      clientId: "web1",
      tenant: "t",
      role: "agent",
    });
    agentDer = Buffer.from(new x509.X509Certificate(cert.certPem).rawData);
  });

  it("reads the identity and caches it by fingerprint", () => {
    const auth = new Authenticator();
    const a = auth.authorize(callWith(agentDer), "agent");
    assert.deepEqual([a.clientId, a.tenant, a.role], ["web1", "t", "agent"]);
    assert.equal(auth.identify(callWith(Buffer.from(agentDer))), a, "second lookup is cached");
  });

  it("refuses the wrong role, a missing certificate, garbage and expiry", () => {
    const auth = new Authenticator({ cacheSize: 1 });
    assert.equal(
      codeOf(() => auth.authorize(callWith(agentDer), "operator")),
      "permission_denied",
    );
    assert.equal(
      codeOf(() => auth.identify(callWith(undefined))),
      "unauthenticated",
    );
    assert.equal(
      codeOf(() => auth.identify(callWith(Buffer.from("junk")))),
      "unauthenticated",
    );
    const later = new Authenticator({ now: () => Date.now() + 48 * 3_600_000 });
    assert.equal(
      codeOf(() => later.identify(callWith(agentDer))),
      "unauthenticated",
    );
  });
});
