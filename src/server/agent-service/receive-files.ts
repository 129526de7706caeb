// SPDX-License-Identifier: Apache-2.0
/**
 * ReceiveFiles: the agent's file-patch stream. Only the newest stream of an instance is served (an
 * older one ends with ABORTED). Opening it triggers a delivery of whatever the agent's last report
 * says is missing, so a reconnecting agent does not wait a whole report interval for its files.
 */
import type { Db } from "../../db/database.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import type { FileTransfer } from "../../protocol/gen/nstance/v1/agent.js";
import type { Leadership } from "../api/api-context.js";
import { requireLeader } from "../api/require-leader.js";
import { callerInstance } from "./caller-instance.js";
import type { FileDelivery } from "./file-delivery.js";
import type { InstanceStreams } from "./instance-streams.js";

/** What ReceiveFiles needs. */
export interface ReceiveFilesDeps {
  db: Db;
  leadership: Leadership;
  streams: InstanceStreams<FileTransfer>;
  delivery: Pick<FileDelivery, "onStreamOpened">;
}

/** Streams file patches to the calling agent until it disconnects or a newer stream replaces it. */
export async function* receiveFiles(
  deps: ReceiveFilesDeps,
  caller: ClientIdentity,
  signal: AbortSignal,
): AsyncGenerator<FileTransfer> {
  requireLeader(deps.leadership);
  const ref = callerInstance(deps.db, caller);
  const claim = deps.streams.open(ref.id, signal);
  try {
    deps.delivery.onStreamOpened(ref);
    for (;;) yield await claim.next();
  } finally {
    claim.release();
  }
}
