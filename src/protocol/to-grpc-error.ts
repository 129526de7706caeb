// SPDX-License-Identifier: Apache-2.0
/**
 * The RPC edge's error mapping, in one place. Handlers throw NstanceError (or subclasses); the
 * service wrappers turn what they catch into a grpc-js ServiceError here, and clients turn a
 * ServiceError back into an NstanceError. No other code constructs gRPC statuses.
 */
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { type ErrorCode, isAbortError, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";

/** gRPC status for each NstanceError code. */
export const GRPC_STATUS_BY_ERROR_CODE: Readonly<Record<ErrorCode, status>> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  precondition_failed: status.FAILED_PRECONDITION,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  aborted: status.ABORTED,
  cancelled: status.CANCELLED,
  internal: status.INTERNAL,
};

/** What clients see for an error the server did not expect; the details stay in the server log. */
export const INTERNAL_ERROR_MESSAGE = "internal error";

/** Options for {@link toGrpcError}. */
export interface ToGrpcErrorOptions {
  /** Where unexpected and internal errors are logged. */
  logger: Logger;
  /** Full RPC method name for the log line, e.g. `/nstance.v1.OperatorService/ListGroups`. */
  method?: string;
}

/**
 * Longest status message sent, in UTF-16 code units. Messages may quote a request (an unknown
 * instance ID), and a status whose trailers outgrow HTTP/2's header limits is never delivered:
 * grpc-js leaves the call, and every later call on that connection, hanging.
 */
export const MAX_STATUS_DETAILS_CHARS = 1_000;

/** `details` cut to {@link MAX_STATUS_DETAILS_CHARS} (never inside a surrogate pair), marked with `…`. */
export function boundedDetails(details: string): string {
  if (details.length <= MAX_STATUS_DETAILS_CHARS) return details;
  let cut = MAX_STATUS_DETAILS_CHARS - 1;
  const c = details.charCodeAt(cut - 1);
  if (c >= 0xd800 && c <= 0xdbff) cut--;
  return `${details.slice(0, cut)}…`;
}

function serviceError(code: status, details: string): ServiceError {
  const bounded = boundedDetails(details);
  return Object.assign(new Error(bounded), { code, details: bounded, metadata: new Metadata() });
}

/**
 * Maps anything a handler threw to a ServiceError. NstanceErrors keep their message; an abort
 * becomes CANCELLED; anything else becomes INTERNAL with a generic message and is logged, because
 * its text may hold details (paths, keys, stack) that callers must not see.
 */
export function toGrpcError(err: unknown, opts: ToGrpcErrorOptions): ServiceError {
  if (err instanceof NstanceError) {
    if (err.code === "internal") {
      opts.logger.error("RPC failed with an internal error", { method: opts.method, err });
    }
    return serviceError(GRPC_STATUS_BY_ERROR_CODE[err.code], err.message);
  }
  if (isAbortError(err)) return serviceError(status.CANCELLED, "operation cancelled");
  opts.logger.error("RPC failed with an unexpected error", { method: opts.method, err });
  return serviceError(status.INTERNAL, INTERNAL_ERROR_MESSAGE);
}

const ERROR_CODE_BY_GRPC_STATUS = new Map<number, ErrorCode>(
  Object.entries(GRPC_STATUS_BY_ERROR_CODE).map(([code, s]) => [s, code as ErrorCode]),
);

function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number";
}

/**
 * Maps an error from a grpc-js client call to an NstanceError with the matching code (the client
 * side of {@link toGrpcError}); the original error is the cause. Statuses without an NstanceError
 * code (UNKNOWN, UNIMPLEMENTED, DATA_LOSS, OUT_OF_RANGE) become `internal`.
 */
export function fromGrpcError(err: unknown): NstanceError {
  if (err instanceof NstanceError) return err;
  if (!isServiceError(err)) {
    return new NstanceError("internal", err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
  const code = ERROR_CODE_BY_GRPC_STATUS.get(err.code) ?? "internal";
  return new NstanceError(code, err.details || err.message, { cause: err });
}
