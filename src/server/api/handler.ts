// SPDX-License-Identifier: Apache-2.0
/**
 * Adapters from async functions to grpc-js handlers. Each runs the function, maps a thrown error
 * to a status once (toGrpcError), logs the outcome, and aborts the function's signal when the
 * client cancels. Server-streaming handlers are async iterables that end when the call does.
 */
import { once } from "node:events";
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { toGrpcError } from "../../protocol/to-grpc-error.js";
import { NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";

/**
 * An RPC that is defined but whose behaviour arrives with a later component (reconciler, secrets
 * store). Answered as UNIMPLEMENTED, which NstanceError codes cannot express.
 */
export class UnimplementedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnimplementedError";
  }
}

/** How open streams end when the server stops. */
export const SHUTDOWN_MESSAGE = "server is shutting down; reconnect";

/** Options shared by the handler adapters. */
export interface HandlerOptions {
  /** Full method path, e.g. `/nstance.v1.OperatorService/ListGroups`, for logs. */
  method: string;
  logger: Logger;
}

/** Options for {@link serverStreamHandler}. */
export interface StreamHandlerOptions extends HandlerOptions {
  /** Aborts when the server stops: open streams then end with UNAVAILABLE so clients reconnect. */
  stopSignal?: AbortSignal;
}

/**
 * Maps anything an RPC threw to a ServiceError: {@link UnimplementedError} to UNIMPLEMENTED,
 * everything else through toGrpcError (the one mapping).
 */
export function rpcError(err: unknown, opts: HandlerOptions): ServiceError {
  if (err instanceof UnimplementedError) {
    return Object.assign(new Error(err.message), {
      code: status.UNIMPLEMENTED,
      details: err.message,
      metadata: new Metadata(),
    });
  }
  return toGrpcError(err, opts);
}

function logOutcome(opts: HandlerOptions, startedAt: number, code: status, details?: string) {
  opts.logger.debug("RPC handled", {
    method: opts.method,
    code: status[code],
    duration_ms: Math.round((performance.now() - startedAt) * 10) / 10,
    ...(code !== status.OK && details ? { details } : {}),
  });
}

/** Adapts `fn` to a grpc-js unary handler; `signal` aborts when the client cancels. */
export function unaryHandler<Req, Res>(
  opts: HandlerOptions,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>, signal: AbortSignal) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const startedAt = performance.now();
    const ctl = new AbortController();
    const onCancel = () => ctl.abort();
    call.once("cancelled", onCancel);
    let result: Promise<Res>;
    try {
      result = fn(call.request, call, ctl.signal);
    } catch (err) {
      result = Promise.reject(err);
    }
    void result.then(
      (res) => {
        call.off("cancelled", onCancel);
        logOutcome(opts, startedAt, status.OK);
        callback(null, res);
      },
      (err: unknown) => {
        call.off("cancelled", onCancel);
        const e = rpcError(err, opts);
        logOutcome(opts, startedAt, e.code, e.details);
        callback(e);
      },
    );
  };
}

/**
 * Adapts an async iterable to a grpc-js server-streaming handler. Messages are written with
 * backpressure; the iterable's `signal` aborts when the client cancels or the server stops, and
 * the iterable should then end. An error ends the call with its mapped status.
 */
export function serverStreamHandler<Req, Res>(
  opts: StreamHandlerOptions,
  fn: (req: Req, call: ServerWritableStream<Req, Res>, signal: AbortSignal) => AsyncIterable<Res>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const startedAt = performance.now();
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    call.once("cancelled", onAbort);
    opts.stopSignal?.addEventListener("abort", onAbort, { once: true });
    if (opts.stopSignal?.aborted) ctl.abort();
    const stopping = () => opts.stopSignal?.aborted === true;
    void (async () => {
      try {
        for await (const msg of fn(call.request, call, ctl.signal)) {
          if (ctl.signal.aborted) break;
          if (!call.write(msg)) await once(call, "drain", { signal: ctl.signal });
        }
        if (call.cancelled) {
          logOutcome(opts, startedAt, status.CANCELLED);
        } else if (stopping()) {
          throw new NstanceError("unavailable", SHUTDOWN_MESSAGE);
        } else {
          logOutcome(opts, startedAt, status.OK);
          call.end();
        }
      } catch (err) {
        if (call.cancelled) {
          logOutcome(opts, startedAt, status.CANCELLED);
          return;
        }
        // While stopping, whatever ended the iterable (usually its aborted signal) means "shutdown".
        const e = rpcError(
          stopping() ? new NstanceError("unavailable", SHUTDOWN_MESSAGE) : err,
          opts,
        );
        logOutcome(opts, startedAt, e.code, e.details);
        call.emit("error", e);
      } finally {
        call.off("cancelled", onAbort);
        opts.stopSignal?.removeEventListener("abort", onAbort);
      }
    })();
  };
}
