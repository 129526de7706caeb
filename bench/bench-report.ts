// SPDX-License-Identifier: Apache-2.0
/** Shared by the benchmarks: statistics and writing a section of docs/benchmarks.md. */
import { readFile, writeFile } from "node:fs/promises";
import { arch, cpus, loadavg, totalmem } from "node:os";

const DOC = new URL("../docs/benchmarks.md", import.meta.url);

/** The p-th percentile (0..100) of `xs`, nearest-rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

/** Median of `xs`. */
export const median = (xs: readonly number[]): number => percentile(xs, 50);

/** One line describing the machine the figures came from. */
export function machineLine(): string {
  const c = cpus();
  return `${c.length} × ${c[0]?.model ?? "cpu"} (${arch()}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, load average ${loadavg()[0]!.toFixed(1)} at the end of the run`;
}

/**
 * Replaces (or appends) the section headed `## title` in docs/benchmarks.md with `body`, so each
 * benchmark owns its section and re-running it refreshes the figures.
 */
export async function writeBenchSection(title: string, body: string): Promise<void> {
  let doc = "";
  try {
    doc = await readFile(DOC, "utf8");
  } catch {
    doc =
      "# Benchmarks\n\nFigures written by the scripts under `bench/`; re-run a script to refresh its section.\n";
  }
  const heading = `## ${title}`;
  const section = `${heading}\n\n${body.trim()}\n`;
  const start = doc.indexOf(`${heading}\n`);
  if (start < 0) {
    doc = `${doc.trimEnd()}\n\n${section}`;
  } else {
    const next = doc.indexOf("\n## ", start + heading.length);
    doc = doc.slice(0, start) + section + (next < 0 ? "" : doc.slice(next));
  }
  await writeFile(DOC, doc.endsWith("\n") ? doc : `${doc}\n`);
}
