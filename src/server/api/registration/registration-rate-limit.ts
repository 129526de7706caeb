// SPDX-License-Identifier: Apache-2.0
/**
 * The anonymous Registration service's per-IP budget (seed 004 gives unauthenticated enrollment a
 * strict per-IP limit): a call beyond its address's budget is refused with RESOURCE_EXHAUSTED
 * before any work, so a flood from one address is dropped at the door and cannot fill the
 * registration queue ahead of other addresses' agents. Agents treat the refusal as transient and
 * retry with backoff.
 */
import { isIP } from "node:net";
import type { handleUnaryCall } from "@grpc/grpc-js";
import {
  type RegistrationServiceServer,
  RegistrationServiceService,
} from "../../../protocol/gen/nstance/v1/registration.js";
import { toGrpcError } from "../../../protocol/to-grpc-error.js";
import { NstanceError } from "../../../shared/errors.js";
import type { Logger } from "../../../shared/logger.js";
import type { RateLimit, RateLimiter } from "../../../shared/rate-limiter.js";

/**
 * Registration calls per client address. Generous on purpose: a whole fleet behind one NAT
 * address registers at once after a large scale-up, and bench/registration.ts sends about 2,200
 * calls from one address within seconds. Beyond the burst an address gets 50 calls/s, far below
 * what the service can refuse, so a flood from one address costs little and others still register.
 */
export const DEFAULT_REGISTRATION_RATE_LIMIT: RateLimit = { burst: 2_500, perSecond: 50 };

/** Trailing metadata telling a gRPC client with a retry policy how long to wait. */
export const RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms";

/**
 * The client address of a grpc-js peer string. grpc-js writes `${remoteAddress}:${remotePort}`
 * (IPv6 without brackets: `::1:5678`), so the last `:digits` is the port whenever what is left is
 * still an IP address.
 */
export function peerAddress(peer: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) return bracketed[1]!;
  const port = /:\d+$/.exec(peer);
  if (port && isIP(peer.slice(0, port.index)) !== 0) return peer.slice(0, port.index);
  return peer;
}

function limited<Req, Res>(
  method: string,
  handler: handleUnaryCall<Req, Res>,
  limiter: RateLimiter,
  logger: Logger,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const address = peerAddress(call.getPeer());
    const r = limiter.take(address);
    if (r.allowed) {
      handler(call, callback);
      return;
    }
    const retrySeconds = Math.ceil(r.retryAfterMs / 1000);
    if (r.firstRefusal) {
      logger.warn("Registration calls from one address exceed its budget; refusing the excess", {
        client_addr: address,
        burst: limiter.limit.burst,
        per_second: limiter.limit.perSecond,
      });
    }
    const err = toGrpcError(
      new NstanceError(
        "resource_exhausted",
        `too many registration calls from ${address}; retry in ${retrySeconds} s`,
      ),
      { logger, method },
    );
    err.metadata.set(RETRY_PUSHBACK_KEY, String(r.retryAfterMs));
    callback(err, null);
  };
}

/** Wraps the Registration service so every call first takes a token from `limiter`. */
export function rateLimitRegistration(
  impl: RegistrationServiceServer,
  limiter: RateLimiter,
  logger: Logger,
): RegistrationServiceServer {
  const def = RegistrationServiceService;
  return {
    registerAgent: limited(def.registerAgent.path, impl.registerAgent, limiter, logger),
    registerOperator: limited(def.registerOperator.path, impl.registerOperator, limiter, logger),
  };
}
