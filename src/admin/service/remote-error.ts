// SPDX-License-Identifier: Apache-2.0
/** Errors that a server returned (or that happened on the way to it), labelled with where. */
import { formatDurationMs } from "../../shared/duration.js";
import { NstanceError } from "../../shared/errors.js";
import { CallError } from "./grpc-call.js";

/** An error from a remote call; `code` is the gRPC status mapped by `fromGrpcError`. */
export class RemoteError extends NstanceError {
  /** What was called, e.g. `shard us-west-2a` or `registration`. */
  readonly target: string;
  /** The dialled `host:port`. */
  readonly address: string;
  /** The server's (or the transport's) message, without the label. */
  readonly detail: string;

  constructor(target: string, address: string, err: NstanceError, timeoutMs: number) {
    const detail = describe(err, timeoutMs);
    const where = err.code === "unavailable" || err.code === "deadline_exceeded";
    super(err.code, `${target}${where ? ` (${address})` : ""}: ${detail}`, { cause: err });
    this.target = target;
    this.address = address;
    this.detail = detail;
    this.name = "RemoteError";
  }
}

/** grpc-js decorates connection errors with timestamps and resolver notes; they only add noise. */
const TIMESTAMP = /\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g;
const RESOLUTION_NOTE = /\.?\s*Resolution note:.*$/s;
const LAST_ERROR = /^No connection established\. Last error: (Error: )?/;

/** Turns a grpc-js UNAVAILABLE message into one line an operator can act on. */
export function describeUnavailable(message: string): string {
  const text = message
    .replace(TIMESTAMP, "")
    .replace(RESOLUTION_NOTE, "")
    .replace(LAST_ERROR, "")
    .trim();
  if (/^Failed to connect$/i.test(text)) {
    // TLS 1.3 servers reject a client certificate after the handshake: all grpc-js sees is this.
    return "the server closed the connection during the TLS handshake (is the operator certificate from this cluster's CA and still valid?)";
  }
  if (/certificate|altnames/i.test(text)) {
    return `${text} (the server certificate must chain to the cluster CA in ca.crt and name the dialled host)`;
  }
  return text;
}

function describe(err: NstanceError, timeoutMs: number): string {
  if (err instanceof CallError && err.outcome === "unknown") {
    const what =
      err.code === "deadline_exceeded"
        ? `no answer within ${formatDurationMs(timeoutMs)} (--timeout)`
        : `the call failed part-way: ${describeUnavailable(err.message)}`;
    return `${err.rpc}: outcome unknown, ${what}; it may have been applied: check before repeating it`;
  }
  switch (err.code) {
    case "unavailable":
      return `cannot reach the server: ${describeUnavailable(err.message)}`;
    case "deadline_exceeded":
      return `no answer within ${formatDurationMs(timeoutMs)} (--timeout)`;
    default:
      return err.message;
  }
}
