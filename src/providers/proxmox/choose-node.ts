// SPDX-License-Identifier: Apache-2.0
/**
 * Where a new Proxmox VM goes: TOPSIS over the online nodes with two benefit criteria, free memory
 * (weight 0.6) and free CPU (weight 0.4), as fractions of each node's capacity (reference §6.2).
 */

/** A node's load as `/cluster/resources?type=node` reports it. */
export interface ProxmoxNodeLoad {
  node: string;
  /** `online`, `offline` or `unknown`. */
  status?: string;
  /** CPU utilisation, 0..1. */
  cpu?: number;
  maxcpu?: number;
  /** Memory in use and total, bytes. */
  mem?: number;
  maxmem?: number;
}

/** Weights of the criteria (they sum to 1). */
export const PROXMOX_NODE_WEIGHTS = { freeMemory: 0.6, freeCpu: 0.4 } as const;

/** A node with its closeness to the ideal node, 0..1 (1 = best on every criterion). */
export interface RankedNode {
  node: string;
  score: number;
}

/**
 * Ranks the online nodes with capacity, best first (ties by name, so the choice is stable).
 * Offline nodes and nodes reporting no capacity are left out.
 */
export function rankProxmoxNodes(nodes: readonly ProxmoxNodeLoad[]): RankedNode[] {
  const usable = nodes.filter(
    (n) => n.status === "online" && (n.maxcpu ?? 0) > 0 && (n.maxmem ?? 0) > 0,
  );
  const rows = usable.map((n) => [
    clamp01(1 - (n.mem ?? 0) / n.maxmem!),
    clamp01(1 - (n.cpu ?? 0)),
  ]);
  const weights = [PROXMOX_NODE_WEIGHTS.freeMemory, PROXMOX_NODE_WEIGHTS.freeCpu];
  // Vector normalisation per criterion, then weighting.
  const norms = weights.map((_, j) => Math.sqrt(rows.reduce((s, r) => s + r[j]! ** 2, 0)));
  const weighted = rows.map((r) =>
    r.map((x, j) => (norms[j]! > 0 ? (x / norms[j]!) * weights[j]! : 0)),
  );
  const best = weights.map((_, j) => Math.max(...weighted.map((r) => r[j]!)));
  const worst = weights.map((_, j) => Math.min(...weighted.map((r) => r[j]!)));
  const ranked = usable.map((n, i) => {
    const v = weighted[i]!;
    const dBest = Math.hypot(...v.map((x, j) => x - best[j]!));
    const dWorst = Math.hypot(...v.map((x, j) => x - worst[j]!));
    // Every node equal on every criterion: all are ideal.
    const score = dBest + dWorst === 0 ? 1 : dWorst / (dBest + dWorst);
    return { node: n.node, score };
  });
  return ranked.sort(
    (a, b) => b.score - a.score || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0),
  );
}

/** The best node for a new VM, or undefined when no node is online with capacity. */
export function chooseProxmoxNode(nodes: readonly ProxmoxNodeLoad[]): string | undefined {
  return rankProxmoxNodes(nodes)[0]?.node;
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
