// SPDX-License-Identifier: Apache-2.0
/**
 * Which storage failures are worth retrying. Backends wrap what their SDK throws with
 * {@link wrapStorageError}; the retrying decorator then only looks at `StorageError.transient`.
 */
import {
  errorMessage,
  isAbortError,
  NstanceError,
  PreconditionFailedError,
  StorageError,
} from "../shared/errors.js";

/** Node and undici error codes for connections that failed or broke: retrying may succeed. */
const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "EBUSY",
  "EMFILE",
  "ENFILE",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

/** SDK error names (AWS) that mean "try again later". */
const TRANSIENT_NAMES = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "InternalError",
  "ServiceUnavailable",
  "OperationAborted",
]);

/** The HTTP status an SDK error carries, if any (AWS `$metadata`, GCS `code`, gaxios `status`). */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as {
    $metadata?: { httpStatusCode?: unknown };
    code?: unknown;
    status?: unknown;
    response?: { status?: unknown };
  };
  for (const v of [e.$metadata?.httpStatusCode, e.code, e.status, e.response?.status]) {
    if (typeof v === "number" && v >= 100 && v < 600) return v;
  }
  return undefined;
}

function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * True when retrying the failed operation may succeed: network errors, timeouts, HTTP 5xx, 429 and
 * 408. A lost conditional write, an abort by the caller and invalid arguments are never transient.
 */
export function isTransientError(err: unknown): boolean {
  if (err instanceof PreconditionFailedError) return false;
  if (err instanceof StorageError) return err.transient;
  if (err instanceof NstanceError) return err.code === "unavailable";
  if (typeof err !== "object" || err === null) return false;
  // An aborted caller signal is final; an SDK's own request timeout is not.
  if (isAbortError(err) && (err as Error).name !== "TimeoutError") return false;
  const status = httpStatusOf(err);
  if (status !== undefined) return isTransientStatus(status);
  const e = err as { code?: unknown; name?: unknown; $retryable?: unknown; cause?: unknown };
  if (typeof e.code === "string" && TRANSIENT_CODES.has(e.code)) return true;
  if (typeof e.name === "string" && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.$retryable !== undefined && e.$retryable !== null) return true;
  // fetch() reports network failures as `TypeError: fetch failed` with the socket error as cause.
  if (e.cause !== undefined && e.cause !== err) return isTransientError(e.cause);
  return false;
}

/**
 * Wraps what a backend threw as a StorageError naming `op` and `key` (transient or not), unless it
 * already is one of our typed errors or an abort, which pass through unchanged.
 */
export function wrapStorageError(op: string, key: string, err: unknown): Error {
  if (err instanceof NstanceError) return err;
  if (isAbortError(err) && (err as Error).name !== "TimeoutError") return err as Error;
  const status = httpStatusOf(err);
  const detail = status !== undefined ? `HTTP ${status}: ${errorMessage(err)}` : errorMessage(err);
  return new StorageError(op, key, detail, isTransientError(err), { cause: err });
}
