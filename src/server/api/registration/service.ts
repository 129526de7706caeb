// SPDX-License-Identifier: Apache-2.0
/**
 * The Registration service (anonymous TLS): agents and operators exchange registration nonces for
 * client certificates. The nonce is the credential, so no client certificate is asked for.
 */
import type { RegistrationServiceServer } from "../../../protocol/gen/nstance/v1/registration.js";
import { RegistrationServiceService } from "../../../protocol/gen/nstance/v1/registration.js";
import { ConcurrencyLimit } from "../../../shared/concurrency-limit.js";
import type { ApiContext } from "../api-context.js";
import { unaryHandler } from "../handler.js";
import { type RegisterAgentState, registerAgent } from "./register-agent.js";
import { registerOperator } from "./register-operator.js";

/**
 * Registrations worked on at once; the rest queue in arrival order. Unlimited, a storm advances in
 * lockstep (every step of every call is interleaved), every call finishes at the end, and a storm
 * longer than the agents' deadline fails as a whole. Queued, callers finish in arrival order and
 * one whose deadline passed while waiting costs nothing. Large enough to overlap storage writes.
 */
export const DEFAULT_REGISTRATION_CONCURRENCY = 64;

/** Options for {@link createRegistrationService}. */
export interface RegistrationServiceOptions {
  ctx: ApiContext;
  /** Defaults to {@link DEFAULT_REGISTRATION_CONCURRENCY}. */
  concurrency?: number;
}

/** Builds the Registration service implementation. */
export function createRegistrationService(
  opts: RegistrationServiceOptions,
): RegistrationServiceServer {
  const { ctx } = opts;
  const logger = ctx.logger;
  const limit = new ConcurrencyLimit(opts.concurrency ?? DEFAULT_REGISTRATION_CONCURRENCY);
  const agentState: RegisterAgentState = { inFlight: new Set() };
  const def = RegistrationServiceService;
  return {
    registerAgent: unaryHandler({ method: def.registerAgent.path, logger }, (req, _call, signal) =>
      limit.run(() => registerAgent(ctx, agentState, req, signal), signal),
    ),
    registerOperator: unaryHandler(
      { method: def.registerOperator.path, logger },
      (req, _call, signal) => limit.run(() => registerOperator(ctx, req, signal), signal),
    ),
  };
}
