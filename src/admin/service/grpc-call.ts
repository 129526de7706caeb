// SPDX-License-Identifier: Apache-2.0
/** Promise wrapper for grpc-js unary calls with a deadline and an AbortSignal. */
import type { CallOptions, ClientUnaryCall, ServiceError } from "@grpc/grpc-js";
import { fromGrpcError } from "../../protocol/to-grpc-error.js";
import { NstanceError } from "../../shared/errors.js";

/** Starts a unary call with the given call options and completion callback. */
export type StartUnaryCall<Res> = (
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, res?: Res) => void,
) => ClientUnaryCall;

/**
 * Runs a unary call that must finish within `timeoutMs`. Failures come back as NstanceError
 * through {@link fromGrpcError} (UNAVAILABLE → `unavailable`, DEADLINE_EXCEEDED →
 * `deadline_exceeded`, and so on); an abort cancels the call and rejects with `cancelled`.
 */
export function callUnary<Res>(
  start: StartUnaryCall<Res>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new NstanceError("cancelled", "operation cancelled", { cause: signal.reason }));
      return;
    }
    const onAbort = (): void => call.cancel();
    const call = start({ deadline: new Date(Date.now() + timeoutMs) }, (err, res) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(fromGrpcError(err));
      else if (res === undefined) reject(new NstanceError("internal", "empty response"));
      else resolve(res);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
