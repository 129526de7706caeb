// SPDX-License-Identifier: Apache-2.0
/**
 * SubmitHealthReport: the agent's persistent client stream. Each report is checked (its
 * instance_id must be the certificate's CN, else PERMISSION_DENIED; fields within limits, else
 * INVALID_ARGUMENT), stored in a batch, and then handed on for the asynchronous follow-ups (files,
 * keys, spot notices, load balancers). A bad message ends only its own stream: grpc-js refuses
 * undecodable or oversized (> 4 MiB) messages itself, and nothing here throws past the stream.
 *
 * How the stream ends is classified for the health logic: a client half-close is `graceful`
 * (answered OK); a cancel, reset, keepalive timeout or a refused report is `lost`. A stream
 * replaced by a newer one of the same instance, or ended because this server stops or lost the
 * shard leadership, raises no event.
 */
import type { handleClientStreamingCall } from "@grpc/grpc-js";
import type { Db } from "../../db/database.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import type { Empty } from "../../protocol/gen/google/protobuf/empty.js";
import {
  AgentServiceService,
  type HealthReportRequest,
} from "../../protocol/gen/nstance/v1/agent.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { Leadership } from "../api/api-context.js";
import type { Authenticator } from "../api/auth.js";
import { rpcError, SHUTDOWN_MESSAGE } from "../api/handler.js";
import { notLeaderMessage, requireLeader } from "../api/require-leader.js";
import type { AgentConnections, AgentDisconnect, DisconnectKind } from "./agent-connections.js";
import { callerInstance, requireOwnInstance } from "./caller-instance.js";
import type { InstanceRef } from "./file-delivery.js";
import { healthReportProblem } from "./health-report.js";
import type { HealthStore } from "./health-store.js";
import type { IngestStats } from "./ingest-stats.js";

const METHOD = AgentServiceService.submitHealthReport.path;
/** How long after the end of the request stream a cancel may still arrive (see `end` below). */
export const DEFAULT_HALF_CLOSE_SETTLE_MS = 20;

/** What the SubmitHealthReport handler needs. */
export interface HealthStreamDeps {
  auth: Authenticator;
  db: Db;
  leadership: Leadership;
  store: HealthStore;
  connections: AgentConnections;
  stats: IngestStats;
  logger: Logger;
  now: () => number;
  /**
   * Registers an open stream's stop function (called when the server stops: the stream ends with
   * UNAVAILABLE so the agent reconnects); returns the function that unregisters it. A registry
   * rather than one abort listener per stream: EventTarget listeners cost O(n) each to add.
   */
  trackStream: (stop: () => void) => () => void;
  /** Called after each report is committed. Must not throw (errors are logged). */
  onStored: (ref: InstanceRef, report: HealthReportRequest) => void;
  /** Called when a stream ends as `graceful` or `lost`. Must not throw (errors are logged). */
  onDisconnect: (e: AgentDisconnect, connection: { peer: string; reports: number }) => void;
}

/** Builds the grpc-js handler of SubmitHealthReport. */
export function submitHealthReportHandler(
  deps: HealthStreamDeps,
): handleClientStreamingCall<HealthReportRequest, Empty> {
  const { logger } = deps;
  return (call, callback) => {
    let settled = false;
    let cleanup = (): void => {};
    const reply = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      if (err === undefined) callback(null, {});
      else callback(rpcError(err, { method: METHOD, logger }));
    };

    let caller: ClientIdentity;
    let ref: InstanceRef;
    try {
      caller = deps.auth.authorize(call, "agent");
      requireLeader(deps.leadership);
      ref = callerInstance(deps.db, caller);
    } catch (err) {
      deps.stats.refused();
      logger.info("Health stream refused", { method: METHOD, reason: errorMessage(err) });
      reply(err);
      return;
    }

    const peer = call.getPeer();
    const handle = deps.connections.open(
      {
        instanceId: ref.id,
        tenant: ref.tenant,
        groupKey: ref.groupKey,
        connectedAt: deps.now(),
        lastReportAt: undefined,
        reports: 0,
        peer,
      },
      () => reply(new NstanceError("aborted", `replaced by a newer health stream of ${ref.id}`)),
    );
    logger.debug("Agent health stream opened", { instance_id: ref.id, peer });

    /** Ends the stream; `kind` is reported unless the stream was replaced meanwhile. */
    const end = (kind: DisconnectKind | undefined, err?: unknown): void => {
      const wasCurrent = deps.connections.close(handle);
      reply(err);
      if (kind === undefined || !wasCurrent) return;
      try {
        deps.onDisconnect(
          { instanceId: ref.id, kind, at: deps.now() },
          { peer, reports: handle.connection.reports },
        );
      } catch (e) {
        logger.error("Disconnect handler failed", { instance_id: ref.id, err: errorMessage(e) });
      }
    };

    cleanup = deps.trackStream(() =>
      end(undefined, new NstanceError("unavailable", SHUTDOWN_MESSAGE)),
    );

    call.on("data", (report: HealthReportRequest) => {
      if (settled) return;
      const arrivedPerfMs = performance.now();
      if (!deps.leadership.isLeader()) {
        end(undefined, new NstanceError("precondition_failed", notLeaderMessage(deps.leadership)));
        return;
      }
      let problem: NstanceError | undefined;
      try {
        requireOwnInstance(caller, report.instanceId);
        const p = healthReportProblem(report);
        if (p) problem = new NstanceError("invalid_argument", `health report refused: ${p}`);
      } catch (err) {
        problem =
          err instanceof NstanceError
            ? err
            : new NstanceError("invalid_argument", errorMessage(err));
      }
      if (problem) {
        deps.stats.refused();
        logger.warn("Health report refused; ending the stream", {
          instance_id: ref.id,
          reason: problem.message,
        });
        end("lost", problem);
        return;
      }
      const at = deps.now();
      deps.connections.reported(handle, at);
      deps.store.record(ref.id, report, at, arrivedPerfMs).then(
        (outcome) => {
          if (outcome === "unknown") {
            end("lost", new NstanceError("not_found", `instance ${ref.id} was deleted`));
            return;
          }
          // A shed report (overload) still proves the agent alive; its follow-ups wait for the next.
          if (outcome === "shed") return;
          try {
            deps.onStored(ref, report);
          } catch (err) {
            logger.error("Health report follow-up failed", {
              instance_id: ref.id,
              err: errorMessage(err),
            });
          }
        },
        (err: unknown) => {
          // The store logged the failure; the agent's next report is stored normally.
          logger.debug("Health report not stored", { instance_id: ref.id, err: errorMessage(err) });
        },
      );
    });
    // grpc-js ends the request stream ("end") for a client cancel or reset too, and reports the
    // cancel ("cancelled") a few ticks later; a half-close is graceful only if no cancel follows.
    call.on("end", () => {
      const timer = setTimeout(() => end("graceful"), DEFAULT_HALF_CLOSE_SETTLE_MS);
      timer.unref();
    });
    call.on("cancelled", () => end("lost", new NstanceError("cancelled", "stream cancelled")));
    call.on("error", (err: unknown) => {
      logger.debug("Health stream error", { instance_id: ref.id, err: errorMessage(err) });
      end("lost", new NstanceError("cancelled", "stream failed"));
    });
  };
}
