// SPDX-License-Identifier: Apache-2.0
/**
 * The `--servers` list (`shard=host:port,...`) and the choice of shards a command runs against
 * (`--shard` or `--all-shards`). A shard listed more than once is an HA set: its servers are tried
 * in order, and a call that certainly did not run on one moves on to the next.
 */
import { parseHostPort } from "../../config/host-port.js";
import { identifierProblem } from "../../config/identifier.js";
import { NstanceError } from "../../shared/errors.js";

/** One shard's operator API endpoints. */
export interface ShardServer {
  /** Shard ID. */
  shard: string;
  /** Operator API address, `host:port`: the first of {@link ShardServer.addresses}. */
  address: string;
  /** Every Operator API address of the shard (its HA set), in list order; absent = `[address]`. */
  addresses?: readonly string[];
}

/** Which shards a command addresses. */
export type ShardSelection = { shard: string } | { allShards: true };

/** A shard's Operator API addresses, in list order (at least one). */
export function shardAddresses(server: ShardServer): readonly string[] {
  return server.addresses && server.addresses.length > 0 ? server.addresses : [server.address];
}

/**
 * Parses `us-west-2a=10.0.0.1:8993,us-west-2a=10.0.0.2:8993,us-west-2b=10.0.1.1:8993`: one entry
 * per shard, in order of first appearance, with every address given for it (an HA pair lists its
 * shard twice). Blank entries and spaces around entries are ignored. Throws NstanceError
 * `invalid_argument` naming the first bad entry: no `=`, an invalid shard ID, an address that is
 * not `host:port` with a host and a non-zero port, or the same address listed twice for a shard.
 */
export function parseServers(text: string): ShardServer[] {
  const servers: Array<{ shard: string; address: string; addresses: string[] }> = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    if (eq < 0) throw bad(`"${entry}" is not shard=host:port`);
    const shard = entry.slice(0, eq).trim();
    const address = entry.slice(eq + 1).trim();
    const problem = identifierProblem(shard);
    if (problem) throw bad(`"${entry}": shard ID ${problem}`);
    const hp = parseHostPort(address);
    if (!hp || hp.host === "" || hp.port === 0) {
      throw bad(`"${entry}": address must be host:port with a host and a non-zero port`);
    }
    const known = servers.find((s) => s.shard === shard);
    if (!known) {
      servers.push({ shard, address, addresses: [address] });
    } else if (known.addresses.includes(address)) {
      throw bad(`${shard}=${address} is listed twice`);
    } else {
      known.addresses.push(address);
    }
  }
  if (servers.length === 0) throw bad("no servers given");
  return servers;
}

function bad(message: string): NstanceError {
  return new NstanceError("invalid_argument", `invalid server list: ${message}`);
}

/** `shard=addr` for each address of each server, comma-separated: the `--servers` form. */
export function formatServers(servers: readonly ShardServer[]): string {
  return servers.flatMap((s) => shardAddresses(s).map((a) => `${s.shard}=${a}`)).join(",");
}

/**
 * Returns the servers a selection addresses, in list order. Throws NstanceError
 * `invalid_argument` for a shard that is not in the list.
 */
export function selectShards(
  servers: readonly ShardServer[],
  selection: ShardSelection,
): ShardServer[] {
  if ("allShards" in selection) return [...servers];
  const found = servers.find((s) => s.shard === selection.shard);
  if (!found) {
    throw new NstanceError(
      "invalid_argument",
      `shard ${selection.shard} is not in the server list (known: ${servers.map((s) => s.shard).join(", ")})`,
    );
  }
  return [found];
}
