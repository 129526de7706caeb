// SPDX-License-Identifier: Apache-2.0
/**
 * The agents connected to this server: one health stream per instance (a newer stream replaces
 * the older one), when it connected, when it last reported, and from where. How a stream ended
 * decides what the server does next (seed 003): a graceful close (the agent half-closed its
 * stream, e.g. on SIGTERM) raises no alarm; anything else — cancel, reset, keepalive timeout —
 * means the agent may be gone and the instance is checked with its provider at once.
 */

/** How an agent's health stream ended. */
export type DisconnectKind = "graceful" | "lost";

/** A health stream that ended, as handed to `onDisconnect`. */
export interface AgentDisconnect {
  instanceId: string;
  kind: DisconnectKind;
  /** When the server saw the stream end (unix ms). */
  at: number;
}

/** One connected agent. */
export interface AgentConnection {
  instanceId: string;
  tenant: string;
  groupKey: string;
  /** When the stream opened (unix ms). */
  connectedAt: number;
  /** When the last report was accepted (unix ms); undefined before the first. */
  lastReportAt: number | undefined;
  /** Reports accepted on this stream. */
  reports: number;
  /** Remote address of the stream (`ip:port`). */
  peer: string;
}

/** A stream's hold on its instance; see {@link AgentConnections.open}. */
export interface ConnectionHandle {
  readonly connection: AgentConnection;
  /** True while this stream is the instance's newest. */
  readonly current: boolean;
}

interface Entry {
  connection: AgentConnection;
  /** Ends the stream because a newer one replaced it. */
  replace: () => void;
  handle: { connection: AgentConnection; current: boolean };
}

/** Tracks connected agents; see the file comment. */
export class AgentConnections {
  readonly #entries = new Map<string, Entry>();

  /**
   * Registers a new stream of `connection.instanceId`. An older stream of the same instance is
   * ended through its `replace` callback and no longer counts as connected.
   */
  open(connection: AgentConnection, replace: () => void): ConnectionHandle {
    const old = this.#entries.get(connection.instanceId);
    const handle = { connection, current: true };
    this.#entries.set(connection.instanceId, { connection, replace, handle });
    if (old) {
      old.handle.current = false;
      old.replace();
    }
    return handle;
  }

  /** Records an accepted report on `handle`'s stream. */
  reported(handle: ConnectionHandle, at: number): void {
    handle.connection.lastReportAt = at;
    handle.connection.reports++;
  }

  /** Removes `handle`'s stream; returns false when it had already been replaced or closed. */
  close(handle: ConnectionHandle): boolean {
    const h = handle as Entry["handle"];
    if (!h.current) return false;
    h.current = false;
    this.#entries.delete(h.connection.instanceId);
    return true;
  }

  /** The connection of `instanceId`, if its agent is connected. */
  get(instanceId: string): AgentConnection | undefined {
    return this.#entries.get(instanceId)?.connection;
  }

  /** Every connected agent. */
  list(): AgentConnection[] {
    return [...this.#entries.values()].map((e) => e.connection);
  }

  /** Number of connected agents. */
  get size(): number {
    return this.#entries.size;
  }
}
