// SPDX-License-Identifier: Apache-2.0
/**
 * Enforces a service's client role at the edge, for every method of an implementation, so a
 * service cannot forget the check: the Operator API admits only `operator` certificates and the
 * Agent API only `agent` ones, whoever writes the handlers.
 */
import type {
  ServiceDefinition,
  ServiceError,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { ClientRole } from "../../pki/role-extension.js";
import type { CallWithAuthContext } from "../../protocol/peer-certificate.js";
import type { Logger } from "../../shared/logger.js";
import type { Authenticator } from "./auth.js";
import { rpcError, UnimplementedError } from "./handler.js";

/** Options for {@link guardService}. */
export interface GuardServiceOptions {
  /** The role every caller's certificate must carry. */
  role: ClientRole;
  auth: Authenticator;
  logger: Logger;
}

type AnyCall = CallWithAuthContext & { emit(event: "error", err: ServiceError): boolean };
type AnyHandler = (call: AnyCall, callback?: sendUnaryData<unknown>) => void;

/**
 * Wraps every method of `impl` so that it runs only for callers whose certificate carries
 * `opts.role`; others get PERMISSION_DENIED (wrong role) or UNAUTHENTICATED (no usable identity).
 * Methods of `definition` missing from `impl` answer UNIMPLEMENTED after the same check.
 */
export function guardService(
  definition: ServiceDefinition,
  impl: UntypedServiceImplementation,
  opts: GuardServiceOptions,
): UntypedServiceImplementation {
  const guarded: UntypedServiceImplementation = {};
  for (const [name, def] of Object.entries(definition)) {
    const handler = impl[name] as unknown as AnyHandler | undefined;
    const method = def.path;
    const fail = (call: AnyCall, callback: sendUnaryData<unknown> | undefined, e: ServiceError) => {
      if (def.responseStream) call.emit("error", e);
      else callback?.(e);
    };
    const wrapped: AnyHandler = (call, callback) => {
      try {
        opts.auth.authorize(call, opts.role);
      } catch (err) {
        const e = rpcError(err, { method, logger: opts.logger });
        opts.logger.info("RPC refused", { method, code: e.code, reason: e.details });
        fail(call, callback, e);
        return;
      }
      if (!handler) {
        const e = new UnimplementedError(`${method} is not implemented yet`);
        fail(call, callback, rpcError(e, { method, logger: opts.logger }));
        return;
      }
      handler(call, callback);
    };
    guarded[name] = wrapped as unknown as UntypedServiceImplementation[string];
  }
  return guarded;
}
