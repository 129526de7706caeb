// SPDX-License-Identifier: Apache-2.0
/** Reads the verified client certificate of a gRPC call. */
import type { ServerUnaryCall } from "@grpc/grpc-js";

/** Any grpc-js server call (unary, client, server or bidi streaming): they all expose this. */
export type CallWithAuthContext = Pick<ServerUnaryCall<unknown, unknown>, "getAuthContext">;

/**
 * Returns the DER bytes of the client certificate the TLS handshake verified, or `undefined` when
 * the connection is not TLS, the client sent no certificate, or it was not verified.
 *
 * `call.getPeer()` gives only the remote address. grpc-js (≥ 1.10) exposes the TLS peer through
 * `call.getAuthContext().sslPeerCertificate`, and fills it only when the socket is `authorized`,
 * i.e. the chain verified against the server's CA, so a certificate returned here is trusted.
 */
export function peerCertificate(call: CallWithAuthContext): Buffer | undefined {
  const raw = call.getAuthContext().sslPeerCertificate?.raw;
  return raw && raw.length > 0 ? raw : undefined;
}
