// SPDX-License-Identifier: Apache-2.0
/**
 * Authentication and role checks at the RPC edge. TLS already verified the client certificate's
 * chain, validity and clientAuth EKU during the handshake; here the verified certificate's identity
 * (CN, tenant O, role extension) is read and the role matched against the service.
 */
import { createHash } from "node:crypto";
import { type ClientIdentity, parseClientIdentity } from "../../pki/client-identity.js";
import type { ClientRole } from "../../pki/role-extension.js";
import { type CallWithAuthContext, peerCertificate } from "../../protocol/peer-certificate.js";
import { NstanceError } from "../../shared/errors.js";

/** Parsed identities kept, by certificate fingerprint (see bench/client-identity.ts). */
export const DEFAULT_IDENTITY_CACHE_SIZE = 4096;

/** Options for {@link Authenticator}. */
export interface AuthenticatorOptions {
  /** Defaults to {@link DEFAULT_IDENTITY_CACHE_SIZE}. */
  cacheSize?: number;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
}

/** Reads and checks the identity of mTLS callers; one instance is shared by every service. */
export class Authenticator {
  readonly #cache = new Map<string, ClientIdentity>();
  readonly #cacheSize: number;
  readonly #now: () => number;

  constructor(opts: AuthenticatorOptions = {}) {
    this.#cacheSize = opts.cacheSize ?? DEFAULT_IDENTITY_CACHE_SIZE;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * The caller's identity. Throws NstanceError `unauthenticated` when the call carries no verified
   * client certificate, the certificate lacks a usable identity, or it expired while the
   * connection stayed open.
   */
  identify(call: CallWithAuthContext): ClientIdentity {
    const der = peerCertificate(call);
    if (!der) throw new NstanceError("unauthenticated", "a client certificate is required");
    const fingerprint = createHash("sha256").update(der).digest("base64");
    let id = this.#cache.get(fingerprint);
    if (id === undefined) {
      id = parseClientIdentity(der);
      if (this.#cache.size >= this.#cacheSize) {
        // Map iteration order is insertion order: drop the oldest entry.
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
      this.#cache.set(fingerprint, id);
    }
    if (id.notAfter.getTime() <= this.#now()) {
      throw new NstanceError("unauthenticated", "client certificate has expired");
    }
    return id;
  }

  /**
   * The caller's identity, which must carry `role`: another role throws NstanceError
   * `permission_denied`; a missing or unusable identity throws `unauthenticated`.
   */
  authorize(call: CallWithAuthContext, role: ClientRole): ClientIdentity {
    const id = this.identify(call);
    if (id.role !== role) {
      throw new NstanceError(
        "permission_denied",
        `this service requires role "${role}"; the client certificate has role "${id.role}"`,
      );
    }
    return id;
  }
}
