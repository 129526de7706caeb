// SPDX-License-Identifier: Apache-2.0
/** Test support: several real nstance-server processes of one shard on one host (an HA set). */
import { join } from "node:path";
import { freePort, type ServerProcess, startServerProcess } from "./server-process.js";

/** One server of the set, restartable with the same identity and ports. */
export interface ShardServer {
  id: string;
  proc: ServerProcess;
  /** Every process this server has run, oldest first (logs of killed ones stay readable). */
  history: ServerProcess[];
  ports: Record<"health" | "election" | "registration" | "operator" | "agent", number>;
  restart(): ServerProcess;
}

/** Options for {@link startShardServers}. */
export interface ShardServersOptions {
  count: number;
  storageArgs: string[];
  workDir: string;
  extraArgs?: string[];
  /** Environment per server index (e.g. a per-server S3 endpoint). */
  env?: (index: number) => Record<string, string>;
}

/** Starts `count` servers named s1..sN with their own ports and cache dirs. */
export async function startShardServers(opts: ShardServersOptions): Promise<ShardServer[]> {
  const servers: ShardServer[] = [];
  for (let i = 0; i < opts.count; i++) {
    const id = `s${i + 1}`;
    const ports = {
      health: await freePort(),
      election: await freePort(),
      registration: await freePort(),
      operator: await freePort(),
      agent: await freePort(),
    };
    const spawn = (): ServerProcess =>
      startServerProcess({
        healthPort: ports.health,
        env: opts.env?.(i) ?? {},
        args: [
          "--id",
          id,
          "--shard",
          "local",
          ...opts.storageArgs,
          "--cachedir",
          join(opts.workDir, `cache-${id}`),
          "--bind-election",
          `127.0.0.1:${ports.election}`,
          "--bind-registration",
          `127.0.0.1:${ports.registration}`,
          "--bind-operator",
          `127.0.0.1:${ports.operator}`,
          "--bind-agent",
          `127.0.0.1:${ports.agent}`,
          "--advertise-host",
          "localhost",
          ...(opts.extraArgs ?? []),
        ],
      });
    const first = spawn();
    const server: ShardServer = {
      id,
      proc: first,
      history: [first],
      ports,
      restart() {
        const p = spawn();
        server.proc = p;
        server.history.push(p);
        return p;
      },
    };
    servers.push(server);
  }
  return servers;
}

/** The leadership block of a server's health JSON, or undefined when it does not answer. */
export async function leadershipOf(
  s: ShardServer,
): Promise<{ role: string; term: number; leader_id: string | null } | undefined> {
  const h = await s.proc.health();
  return h.body?.leadership as { role: string; term: number; leader_id: string | null } | undefined;
}

/**
 * Polls until exactly one of the live servers says it leads and every live server names it.
 * Returns the leader and the time it was first seen. Fails at once, with its output, when every
 * server has exited (a server that cannot start would otherwise cost the whole timeout).
 */
export async function waitForSingleLeader(
  servers: readonly ShardServer[],
  timeoutMs = 60_000,
): Promise<{ leader: ShardServer; term: number; at: number }> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const live = servers.filter(
      (s) => s.proc.child.exitCode === null && s.proc.child.signalCode === null,
    );
    if (live.length === 0) {
      const exits = servers.map(
        (s) =>
          `${s.id} exited (${s.proc.child.exitCode ?? s.proc.child.signalCode})${s.proc.recent()}`,
      );
      throw new Error(`no server is running to lead:\n${exits.join("\n")}`);
    }
    const states = await Promise.all(live.map((s) => leadershipOf(s)));
    const leaders = live.filter((_, i) => states[i]?.role === "leader");
    last = JSON.stringify(states);
    if (leaders.length === 1 && states.every((st) => st?.leader_id === leaders[0]!.id)) {
      const term = states[live.indexOf(leaders[0]!)]!.term;
      return { leader: leaders[0]!, term, at: Date.now() };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no single agreed leader within ${timeoutMs} ms; last states ${last}`);
}
