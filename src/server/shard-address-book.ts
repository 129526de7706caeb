// SPDX-License-Identifier: Apache-2.0
/**
 * The Registration and Agent addresses new agents are given: this server's own first, then those of
 * the shard's other live servers from their heartbeats. An agent tries them in order and moves on
 * when a server is unreachable or answers as a standby, so after a failover it finds the new leader
 * without a leader network address (the reference's floating IP) that a local shard does not have.
 */
import type { ShardAddresses } from "./instances/instance-manager.js";
import type { LeaderLoop } from "./leader-work.js";
import type { ServerHeartbeat } from "./server-registry.js";

/** What the book reads the shard's servers from ({@link ServerRegistry}). */
export interface HeartbeatSource {
  list(signal?: AbortSignal): Promise<Array<ServerHeartbeat & { stale: boolean }>>;
}

/** Options for {@link ShardAddressBook}. */
export interface ShardAddressBookOptions {
  selfId: string;
  /** This server's own advertised addresses. */
  own: ShardAddresses;
  source: HeartbeatSource;
  intervalMs: number;
}

/** {@link ShardAddresses} whose lists follow the shard's live servers. */
export class ShardAddressBook implements ShardAddresses {
  readonly #o: ShardAddressBookOptions;
  #peers: ServerHeartbeat[] = [];

  constructor(opts: ShardAddressBookOptions) {
    this.#o = opts;
  }

  /** Comma-separated Registration addresses, this server's first. */
  get registration(): string {
    return this.#join(this.#o.own.registration, "registration");
  }

  /** Comma-separated Agent service addresses, this server's first. */
  get agent(): string {
    return this.#join(this.#o.own.agent, "agent");
  }

  /** This server's Operator address. */
  get operator(): string | undefined {
    return this.#o.own.operator;
  }

  /** Re-reads the live servers' heartbeats; on a storage error the last list stays. */
  async refresh(signal?: AbortSignal): Promise<void> {
    const all = await this.#o.source.list(signal);
    this.#peers = all.filter((s) => !s.stale && s.id !== this.#o.selfId && s.addresses);
  }

  /** A leader loop that keeps the list current. */
  refreshLoop(): LeaderLoop {
    return {
      name: "shard-address-book",
      intervalMs: this.#o.intervalMs,
      run: ({ signal }) => this.refresh(signal),
    };
  }

  #join(own: string, kind: "registration" | "agent"): string {
    const out = [own];
    for (const p of this.#peers) {
      const a = p.addresses[kind];
      if (a && !out.includes(a)) out.push(a);
    }
    return out.join(",");
  }
}
