// SPDX-License-Identifier: Apache-2.0
/** Filesystem usage via statfs(2). */
import { statfs } from "node:fs/promises";

/** Block counts as statfs(2) reports them. */
export interface FsBlocks {
  /** Total data blocks. */
  blocks: number;
  /** Free blocks (including those reserved for root). */
  bfree: number;
  /** Free blocks available to unprivileged users. */
  bavail: number;
}

/**
 * Used space in percent, computed as `df` does: used / (used + available to users). Blocks
 * reserved for root count as neither, so a full disk reads 100 % even while root can still write.
 */
export function diskUsedPercent(fs: FsBlocks): number {
  const used = fs.blocks - fs.bfree;
  const denominator = used + fs.bavail;
  if (denominator <= 0) return 0;
  return Math.min(100, Math.max(0, (used / denominator) * 100));
}

/** Reads the used percentage of the filesystem that holds `path`. */
export async function readDiskUsedPercent(path: string): Promise<number> {
  return diskUsedPercent(await statfs(path));
}
