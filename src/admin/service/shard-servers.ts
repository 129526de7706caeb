// SPDX-License-Identifier: Apache-2.0
/**
 * The `--servers` list (`shard=host:port,...`) and the choice of shards a command runs against
 * (`--shard` or `--all-shards`).
 */
import { parseHostPort } from "../../config/host-port.js";
import { identifierProblem } from "../../config/identifier.js";
import { NstanceError } from "../../shared/errors.js";

/** One shard's operator API endpoint. */
export interface ShardServer {
  /** Shard ID. */
  shard: string;
  /** Operator API address, `host:port`. */
  address: string;
}

/** Which shards a command addresses. */
export type ShardSelection = { shard: string } | { allShards: true };

/**
 * Parses `us-west-2a=10.0.0.1:8993,us-west-2b=10.0.1.1:8993`. Blank entries and spaces around
 * entries are ignored. Throws NstanceError `invalid_argument` naming the first bad entry: no `=`,
 * an invalid shard ID, an address that is not `host:port` with a host and a non-zero port, or a
 * shard listed twice.
 */
export function parseServers(text: string): ShardServer[] {
  const servers: ShardServer[] = [];
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
    if (servers.some((s) => s.shard === shard)) throw bad(`shard ${shard} is listed twice`);
    servers.push({ shard, address });
  }
  if (servers.length === 0) throw bad("no servers given");
  return servers;
}

function bad(message: string): NstanceError {
  return new NstanceError("invalid_argument", `invalid server list: ${message}`);
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
