// SPDX-License-Identifier: Apache-2.0
/**
 * Connects a term's reconciler to the server metrics: pass durations, actions by outcome, how long
 * after its last sign of life an instance was found unhealthy, and how long its replacement took.
 */
import type { Db } from "../../db/database.js";
import { getLiveInstance } from "../../db/instance-lifecycle.js";
import { getInstance } from "../../db/instances-table.js";
import type { ExecutedAction, ReconcilerHooks } from "../../reconcile/reconciler.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ServerMetrics } from "./server-metrics.js";

/** What {@link reconcilerMetrics} returns: spread it into the reconciler's options. */
export interface ReconcilerMetricsTuning {
  onAction: (e: ExecutedAction) => void;
  hooks: ReconcilerHooks;
}

/**
 * Hooks recording reconciler metrics. Detection time is measured from the instance's last health
 * report (else its registration, else its creation); replacement time from the verdict (or the
 * spot notice) to the replacement's successful create. A failing lookup is logged, never thrown.
 */
export function reconcilerMetrics(
  metrics: Pick<
    ServerMetrics,
    "reconcilePass" | "reconcileAction" | "unhealthyDetected" | "replacementCreated"
  >,
  db: Db,
  logger: Logger,
): ReconcilerMetricsTuning {
  const safely = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      // Metrics must never break a reconcile pass; the miss is logged at debug level only.
      logger.debug("Reconciler metric not recorded", { metric: what, err: errorMessage(err) });
    }
  };
  return {
    onAction: (e) =>
      safely("action", () => {
        metrics.reconcileAction(e.action.kind, e.outcome);
        if (e.action.kind !== "create" || e.outcome !== "done") return;
        const replaced = e.action.replaces;
        if (replaced === undefined) return;
        const old = getLiveInstance(db, replaced);
        const since = old?.unhealthyAt ?? old?.spotNoticeAt;
        metrics.replacementCreated(e.action.reason, since === undefined ? undefined : e.at - since);
      }),
    hooks: {
      passDone: (ms) => safely("pass", () => metrics.reconcilePass(ms)),
      foundUnhealthy: ({ instanceId, reason, at }) =>
        safely("detection", () => {
          const row = getInstance(db, instanceId);
          // A later verdict that only escalates (the VM stopped meanwhile) is not a new detection.
          if (!row || (row.unhealthyAt !== undefined && row.unhealthyAt !== at)) return;
          const lastSign = row.healthAt ?? row.registeredAt ?? row.createdAt;
          metrics.unhealthyDetected(reason, at - lastSign);
        }),
    },
  };
}
