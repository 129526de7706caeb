// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the security checks: what a listener does with a TLS handshake of a given
 * version, with plaintext HTTP/2 (prior knowledge, as a gRPC client without TLS sends) and with
 * plaintext HTTP/1.1. Each probe reports what happened instead of throwing.
 */
import { connect as http2Connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { type SecureVersion, connect as tlsConnect } from "node:tls";

/** Generous bound of one probe (a loaded CI machine); a refusal usually takes milliseconds. */
export const PROBE_TIMEOUT_MS = 10_000;

/**
 * The finish function of a probe: settles once, cancels the time limit and runs `cleanup`; when
 * nothing happens for {@link PROBE_TIMEOUT_MS}, settles with `onTimeout`.
 */
function settler<T>(resolve: (v: T) => void, cleanup: () => void, onTimeout: T): (v: T) => void {
  let done = false;
  const finish = (v: T): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    cleanup();
    resolve(v);
  };
  const timer = setTimeout(() => finish(onTimeout), PROBE_TIMEOUT_MS);
  return finish;
}

/** Outcome of a TLS handshake attempt. */
export type TlsProbe =
  | { handshake: true; protocol: string | null; authorized: boolean }
  | { handshake: false; error: string };

/** Options for {@link probeTls}. */
export interface TlsProbeOptions {
  port: number;
  /** Exact version to offer (min = max). */
  version: SecureVersion;
  /** CA to trust; the handshake is verified against it. */
  caPem: string;
  /** Client certificate and key for mutual TLS. */
  certPem?: string;
  keyPem?: string;
}

/** Attempts a TLS handshake with `localhost:port` offering only `version`. */
export function probeTls(opts: TlsProbeOptions): Promise<TlsProbe> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: "localhost",
      port: opts.port,
      servername: "localhost",
      minVersion: opts.version,
      maxVersion: opts.version,
      ca: opts.caPem,
      ...(opts.certPem ? { cert: opts.certPem, key: opts.keyPem } : {}),
      rejectUnauthorized: true,
    });
    const finish = settler<TlsProbe>(resolve, () => socket.destroy(), {
      handshake: false,
      error: "timeout",
    });
    socket.once("secureConnect", () =>
      finish({ handshake: true, protocol: socket.getProtocol(), authorized: socket.authorized }),
    );
    socket.once("error", (err: NodeJS.ErrnoException) =>
      finish({ handshake: false, error: err.code ?? err.message }),
    );
    socket.once("close", () => finish({ handshake: false, error: "closed" }));
  });
}

/** Outcome of a plaintext request: an answer (status), or how the connection was refused. */
export type PlaintextProbe = { answered: true; status: number } | { answered: false; how: string };

const refused = (err: NodeJS.ErrnoException): PlaintextProbe => ({
  answered: false,
  how: err.code ?? err.message,
});
const NO_ANSWER: PlaintextProbe = { answered: false, how: "no answer" };

/** Sends a plaintext HTTP/2 request with prior knowledge (h2c), as a gRPC client without TLS does. */
export function probePlaintextHttp2(port: number): Promise<PlaintextProbe> {
  return new Promise((resolve) => {
    const session = http2Connect(`http://localhost:${port}`);
    const finish = settler(resolve, () => session.destroy(), NO_ANSWER);
    session.on("error", (err: NodeJS.ErrnoException) => finish(refused(err)));
    session.on("close", () => finish({ answered: false, how: "closed" }));
    const req = session.request({
      ":method": "POST",
      ":path": "/nstance.v1.OperatorService/ListGroups",
      "content-type": "application/grpc",
      te: "trailers",
    });
    req.on("response", (headers) => finish({ answered: true, status: Number(headers[":status"]) }));
    req.on("error", (err: NodeJS.ErrnoException) => finish(refused(err)));
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** Sends a plaintext HTTP/1.1 GET and reports whether an HTTP answer came back. */
export function probePlaintextHttp1(port: number, path = "/"): Promise<PlaintextProbe> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "localhost");
    let received = Buffer.alloc(0);
    const finish = settler(resolve, () => socket.destroy(), NO_ANSWER);
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString("latin1"));
      if (m) finish({ answered: true, status: Number(m[1]) });
    });
    socket.on("error", (err: NodeJS.ErrnoException) => finish(refused(err)));
    socket.on("close", () =>
      finish({
        answered: false,
        how: received.length > 0 ? `closed after ${received.length} non-HTTP bytes` : "closed",
      }),
    );
  });
}
