// SPDX-License-Identifier: Apache-2.0
/**
 * Who leads each shard and which servers are alive, read from the bucket: the leader lockfile
 * (`{prefix}leader.json`) and the servers' heartbeat records (`{prefix}servers/{id}.json`). The
 * Operator API does not say which server leads, and the bucket is the source of truth anyway.
 */
import { type LockRecord, parseLockRecord } from "../../election/lockfile.js";
import { DEFAULT_HEARTBEAT_TTL_MS, type ServerHeartbeat } from "../../server/server-registry.js";
import type { ObjectStorage } from "../../storage/object-storage.js";

/** The shard prefix template of nstance-server's `--prefix` default. */
export const DEFAULT_SHARD_PREFIX = "shard/{shard}/";

/** One server's heartbeat, with whether it is older than the heartbeat TTL. */
export interface ServerView {
  id: string;
  role: "leader" | "standby";
  term: number;
  version: string;
  updatedAt: string;
  stale: boolean;
}

/** A shard's leadership as the bucket records it. */
export interface ShardLeadership {
  /** The lockfile; undefined before the first election (or when it cannot be parsed). */
  leader: LockRecord | undefined;
  /** Heartbeat records, sorted by server ID. */
  servers: ServerView[];
}

/** The shard prefix for `shard` from a template such as {@link DEFAULT_SHARD_PREFIX}. */
export function shardPrefix(template: string, shard: string): string {
  const p = template.replaceAll("{shard}", shard);
  return p === "" || p.endsWith("/") ? p : `${p}/`;
}

/** Reads a shard's lockfile and heartbeats; a malformed record is skipped, not thrown. */
export async function readShardLeadership(
  storage: ObjectStorage,
  prefix: string,
  now: number = Date.now(),
  signal?: AbortSignal,
): Promise<ShardLeadership> {
  const lock = await storage.get(`${prefix}leader.json`, signal);
  let leader: LockRecord | undefined;
  try {
    leader = lock ? parseLockRecord(lock.body) : undefined;
  } catch {
    leader = undefined;
  }
  const infos = await storage.list(`${prefix}servers/`, signal);
  const servers: ServerView[] = [];
  for (const info of infos) {
    const obj = await storage.get(info.key, signal);
    if (!obj) continue;
    try {
      const hb = JSON.parse(obj.body.toString("utf8")) as ServerHeartbeat;
      if (typeof hb.id !== "string") continue;
      servers.push({
        id: hb.id,
        role: hb.role === "leader" ? "leader" : "standby",
        term: Number(hb.term) || 0,
        version: String(hb.version ?? ""),
        updatedAt: String(hb.updated_at ?? ""),
        stale: !(now - Date.parse(hb.updated_at) <= DEFAULT_HEARTBEAT_TTL_MS),
      });
    } catch {
      // A half-written or foreign object under servers/: not a server.
    }
  }
  servers.sort((a, b) => a.id.localeCompare(b.id));
  return { leader, servers };
}
