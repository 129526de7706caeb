// SPDX-License-Identifier: Apache-2.0
/**
 * The Registration service (anonymous TLS): agents and operators exchange registration nonces for
 * client certificates. The nonce is the credential, so no client certificate is asked for.
 */
import type { RegistrationServiceServer } from "../../../protocol/gen/nstance/v1/registration.js";
import { RegistrationServiceService } from "../../../protocol/gen/nstance/v1/registration.js";
import type { ApiContext } from "../api-context.js";
import { ConcurrencyLimit } from "../concurrency-limit.js";
import { unaryHandler } from "../handler.js";
import { type RegisterAgentState, registerAgent } from "./register-agent.js";
import { registerOperator } from "./register-operator.js";

/**
 * Certificates issued at once by registrations (the rest queue in arrival order). Issuance costs
 * milliseconds of CPU; unlimited, a storm of registrations advances in lockstep and every call
 * finishes at the end. Storage writes run outside this limit, so they overlap.
 */
export const DEFAULT_REGISTRATION_CONCURRENCY = 8;

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
  const issueLimit = new ConcurrencyLimit(opts.concurrency ?? DEFAULT_REGISTRATION_CONCURRENCY);
  const agentState: RegisterAgentState = { inFlight: new Set(), issueLimit };
  const def = RegistrationServiceService;
  return {
    registerAgent: unaryHandler({ method: def.registerAgent.path, logger }, (req, _call, signal) =>
      registerAgent(ctx, agentState, req, signal),
    ),
    registerOperator: unaryHandler(
      { method: def.registerOperator.path, logger },
      (req, _call, signal) => registerOperator(ctx, issueLimit, req, signal),
    ),
  };
}
