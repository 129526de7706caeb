// SPDX-License-Identifier: Apache-2.0
/**
 * Where the reconciler reads the configured groups and hears of changes. The server's ConfigStore
 * satisfies it; declared here, narrowly, so the reconciler does not depend on the server.
 */
import type { EffectiveGroup, ServerConfig } from "../config/server-config.js";

/** A change to one effective group (ConfigStore's `GroupChange`). */
export type GroupSourceChange =
  | { type: "upsert"; group: EffectiveGroup }
  | { type: "delete"; tenant: string; key: string };

/** The configuration in force and its group changes. */
export interface GroupSource {
  /** The static config and the effective (merged) groups in force. */
  current(): { config: ServerConfig; effective: { groups: readonly EffectiveGroup[] } };
  /** Calls `listener` for every later group change; returns the unsubscribe function. */
  subscribe(listener: (change: GroupSourceChange) => void): () => void;
}
