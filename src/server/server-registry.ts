// SPDX-License-Identifier: Apache-2.0
/**
 * Server heartbeats (seed 002's instance registration, on object storage): every server of a shard,
 * leader or standby, writes `{prefix}servers/{id}.json` every few seconds; records older than a TTL
 * are stale, and the leader removes them. The cluster view counts registered and healthy servers.
 */
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { ObjectStorage } from "../storage/object-storage.js";
import type { LeaderLoop } from "./leader-work.js";

/** How often each server writes its heartbeat (seed 002: 5 s). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000;
/** A heartbeat older than this is stale and removed by the leader (seed 002: 30 s). */
export const DEFAULT_HEARTBEAT_TTL_MS = 30_000;

/** One server's heartbeat record. */
export interface ServerHeartbeat {
  id: string;
  shard: string;
  version: string;
  role: "leader" | "standby";
  term: number;
  addresses: Record<string, string>;
  started_at: string;
  updated_at: string;
}

/** Options for {@link ServerRegistry}. */
export interface ServerRegistryOptions {
  storage: ObjectStorage;
  /** Shard prefix, e.g. `shard/us-west-2a/`. */
  prefix: string;
  self: () => ServerHeartbeat;
  intervalMs?: number;
  ttlMs?: number;
  logger: Logger;
  now?: () => number;
}

/** Writes this server's heartbeat and, as a leader loop, removes stale ones. */
export class ServerRegistry {
  readonly #o: ServerRegistryOptions;
  readonly #intervalMs: number;
  readonly #ttlMs: number;
  #ctl: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #lastWriteOk = false;

  constructor(opts: ServerRegistryOptions) {
    this.#o = opts;
    this.#intervalMs = opts.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.#ttlMs = opts.ttlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
  }

  #key(id: string): string {
    return `${this.#o.prefix}servers/${id}.json`;
  }

  /** Whether the last heartbeat write succeeded (a readiness signal for storage). */
  get healthy(): boolean {
    return this.#lastWriteOk;
  }

  /** Starts writing heartbeats. */
  start(): void {
    if (this.#loop) return;
    const ctl = new AbortController();
    this.#ctl = ctl;
    this.#loop = (async () => {
      while (!ctl.signal.aborted) {
        await this.beat(ctl.signal);
        await sleep(this.#intervalMs, ctl.signal).catch(() => undefined);
      }
    })();
  }

  /** Writes one heartbeat now. */
  async beat(signal?: AbortSignal): Promise<void> {
    const hb = this.#o.self();
    try {
      await this.#o.storage.put(this.#key(hb.id), JSON.stringify(hb), {
        contentType: "application/json",
        ...(signal ? { signal } : {}),
      });
      this.#lastWriteOk = true;
    } catch (err) {
      this.#lastWriteOk = false;
      if (!signal?.aborted)
        this.#o.logger.warn("Heartbeat write failed", { err: errorMessage(err) });
    }
  }

  /** Stops the heartbeat loop and removes this server's record (a graceful leave). */
  async stop(): Promise<void> {
    const ctl = this.#ctl;
    if (!ctl) return;
    this.#ctl = undefined;
    ctl.abort();
    await this.#loop;
    this.#loop = undefined;
    await this.#o.storage.delete(this.#key(this.#o.self().id)).catch(() => undefined);
  }

  /** Every heartbeat record with a `stale` flag. */
  async list(signal?: AbortSignal): Promise<Array<ServerHeartbeat & { stale: boolean }>> {
    const now = (this.#o.now ?? Date.now)();
    const infos = await this.#o.storage.list(`${this.#o.prefix}servers/`, signal);
    const out: Array<ServerHeartbeat & { stale: boolean }> = [];
    for (const info of infos) {
      const obj = await this.#o.storage.get(info.key, signal);
      if (!obj) continue;
      try {
        const hb = JSON.parse(obj.body.toString("utf8")) as ServerHeartbeat;
        out.push({ ...hb, stale: now - Date.parse(hb.updated_at) > this.#ttlMs });
      } catch {
        out.push({
          id: info.key,
          shard: "",
          version: "",
          role: "standby",
          term: 0,
          addresses: {},
          started_at: "",
          updated_at: "",
          stale: true,
        });
      }
    }
    return out;
  }

  /** The leader-only sweep that removes stale heartbeat records. */
  sweepLoop(): LeaderLoop {
    return {
      name: "server-heartbeat-sweep",
      intervalMs: this.#intervalMs,
      run: async ({ term, signal, storage }) => {
        for (const s of await this.list(signal)) {
          if (!s.stale) continue;
          await storage.delete(s.id.endsWith(".json") ? s.id : this.#key(s.id), signal);
          this.#o.logger.info("Removed stale server heartbeat", {
            stale_server_id: s.id,
            term,
            last_seen: s.updated_at,
          });
        }
      },
    };
  }
}
