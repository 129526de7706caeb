// SPDX-License-Identifier: Apache-2.0
/** Promise wrapper for grpc-js unary calls with a deadline and an AbortSignal. */
import type { CallOptions, ClientUnaryCall, ServiceError } from "@grpc/grpc-js";
import { fromGrpcError } from "../../protocol/to-grpc-error.js";
import { NstanceError } from "../../shared/errors.js";
import { type CallOutcome, callOutcome } from "./retry-policy.js";

/** Starts a unary call with the given call options and completion callback. */
export type StartUnaryCall<Res> = (
  options: Partial<CallOptions>,
  callback: (err: ServiceError | null, res?: Res) => void,
) => ClientUnaryCall;

/** A failed unary call: the mapped error, the RPC's name, and what is known of its effect. */
export class CallError extends NstanceError {
  /** RPC method name, e.g. `UpsertGroup`. */
  readonly rpc: string;
  /** Whether the call certainly did not run, may have run, or was refused for good. */
  readonly outcome: CallOutcome;
  constructor(rpc: string, err: NstanceError) {
    super(err.code, err.message, { cause: err.cause ?? err });
    this.rpc = rpc;
    this.outcome = callOutcome(err);
    this.name = "CallError";
  }
}

/**
 * Runs unary call `rpc` that must finish within `timeoutMs`. Failures come back as a
 * {@link CallError} whose code comes from {@link fromGrpcError} (UNAVAILABLE → `unavailable`,
 * DEADLINE_EXCEEDED → `deadline_exceeded`, and so on); an abort cancels the call and rejects with
 * `cancelled`.
 */
export function callUnary<Res>(
  rpc: string,
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
      if (err) reject(new CallError(rpc, fromGrpcError(err)));
      else if (res === undefined) reject(new NstanceError("internal", "empty response"));
      else resolve(res);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
