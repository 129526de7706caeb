// SPDX-License-Identifier: Apache-2.0
/**
 * TLS settings for every listener and client: TLS 1.3 only, the cluster CA as the only trust
 * anchor. Registration and the election endpoint (it serves only the public leadership record)
 * use server-authenticated TLS (no client certificate); the agent and operator APIs use mutual TLS.
 */
import type { SecureServerOptions } from "node:http2";
import { type ConnectionOptions, createSecureContext, type SecureContextOptions } from "node:tls";
import { type ChannelCredentials, credentials, ServerCredentials } from "@grpc/grpc-js";

/** The only TLS version nstance speaks. */
export const TLS_VERSION = "TLSv1.3";

/** Certificate material for a TLS server. */
export interface ServerTlsOptions {
  /** The cluster CA certificate PEM; client certificates must chain to it. */
  caCertPem: string | Buffer;
  /** The server certificate PEM. */
  certPem: string | Buffer;
  /** The server's PKCS#8 private key PEM. */
  keyPem: string | Buffer;
  /**
   * `true`: mutual TLS, a client certificate signed by the CA is required (agent, operator).
   * `false`: anonymous clients (registration, the election endpoint).
   */
  requireClientCert: boolean;
}

/** Certificate material for a TLS client. */
export interface ClientTlsOptions {
  /** The cluster CA certificate PEM: the only trusted root. */
  caCertPem: string | Buffer;
  /** Client certificate PEM, for mutual TLS. */
  certPem?: string | Buffer;
  /** Client private key PEM, for mutual TLS. */
  keyPem?: string | Buffer;
}

function contextOptions(o: {
  caCertPem: string | Buffer;
  certPem?: string | Buffer;
  keyPem?: string | Buffer;
}): SecureContextOptions {
  return {
    minVersion: TLS_VERSION,
    maxVersion: TLS_VERSION,
    ca: o.caCertPem,
    ...(o.certPem !== undefined ? { cert: o.certPem } : {}),
    ...(o.keyPem !== undefined ? { key: o.keyPem } : {}),
  };
}

/**
 * Node `tls`/`https`/`http2` server options. With `requireClientCert`, the handshake fails unless
 * the client presents a certificate that chains to the CA (OpenSSL also checks its clientAuth EKU).
 */
export function serverTlsOptions(opts: ServerTlsOptions): SecureServerOptions {
  return {
    ...contextOptions(opts),
    requestCert: opts.requireClientCert,
    rejectUnauthorized: opts.requireClientCert,
  };
}

/** Node `tls.connect`/`https` client options: trust only the cluster CA, verify the host name. */
export function clientTlsOptions(opts: ClientTlsOptions): ConnectionOptions {
  return { ...contextOptions(opts), rejectUnauthorized: true };
}

/**
 * grpc-js server credentials pinned to TLS 1.3. `ServerCredentials.createSsl` cannot set the
 * protocol version, so this subclass hands grpc-js the same options it would build, plus ours.
 * {@link Tls13ServerCredentials.update} swaps the certificate for new connections (renewal).
 */
export class Tls13ServerCredentials extends ServerCredentials {
  readonly #requireClientCert: boolean;

  constructor(opts: ServerTlsOptions) {
    super(
      { requestCert: opts.requireClientCert, rejectUnauthorized: opts.requireClientCert },
      contextOptions(opts),
    );
    this.#requireClientCert = opts.requireClientCert;
  }

  /** Uses new certificate material for connections accepted from now on. */
  update(opts: Omit<ServerTlsOptions, "requireClientCert">): void {
    this.updateSecureContextOptions(contextOptions(opts));
  }

  /** True when mutual TLS is required. */
  get requireClientCert(): boolean {
    return this.#requireClientCert;
  }

  override _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** grpc-js server credentials: TLS 1.3, mutual when `requireClientCert`. */
export function grpcServerCredentials(opts: ServerTlsOptions): Tls13ServerCredentials {
  return new Tls13ServerCredentials(opts);
}

/**
 * grpc-js channel credentials: TLS 1.3, trusting only the cluster CA, with a client certificate
 * when given. The dialled host must be one of the server certificate's SANs.
 */
export function grpcChannelCredentials(opts: ClientTlsOptions): ChannelCredentials {
  return credentials.createFromSecureContext(createSecureContext(contextOptions(opts)));
}
