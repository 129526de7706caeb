// SPDX-License-Identifier: Apache-2.0
/**
 * ReceiveKeyRequests: the agent's key-generation stream. Only the newest stream of an instance is
 * served. Opening it sends every key the instance's certificate files need and the agent has not
 * submitted; later requests follow health reports while keys are still missing.
 */
import type { Db } from "../../db/database.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import type { KeyGenerationRequest } from "../../protocol/gen/nstance/v1/agent.js";
import type { Leadership } from "../api/api-context.js";
import { requireLeader } from "../api/require-leader.js";
import { callerInstance } from "./caller-instance.js";
import type { InstanceStreams } from "./instance-streams.js";
import type { KeyRequests } from "./key-requests.js";

/** What ReceiveKeyRequests needs. */
export interface ReceiveKeyRequestsDeps {
  db: Db;
  leadership: Leadership;
  streams: InstanceStreams<KeyGenerationRequest>;
  keyRequests: Pick<KeyRequests, "onStreamOpened">;
}

/** Streams key generation requests to the calling agent. */
export async function* receiveKeyRequests(
  deps: ReceiveKeyRequestsDeps,
  caller: ClientIdentity,
  signal: AbortSignal,
): AsyncGenerator<KeyGenerationRequest> {
  requireLeader(deps.leadership);
  const ref = callerInstance(deps.db, caller);
  const claim = deps.streams.open(ref.id, signal);
  try {
    deps.keyRequests.onStreamOpened(ref);
    for (;;) yield await claim.next();
  } finally {
    claim.release();
  }
}
