// SPDX-License-Identifier: Apache-2.0
/** Test helpers: samples out of a Prometheus text exposition, and storage that fails on demand. */
import { StorageError } from "../../shared/errors.js";
import { MemoryStorage } from "../../storage/memory-storage.js";

/** One sample: metric name, labels and value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the samples of a text exposition (comments and blank lines skipped). */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * The value of the one sample of `name` whose labels include `labels`; undefined when none matches,
 * an error when several do.
 */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const hits = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (hits.length > 1)
    throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

/** The names of the `# TYPE` lines: every metric family exposed, samples or not. */
export function metricFamilies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Memory storage whose reads fail (after retries, as it were) while `failing` is set. */
export class SwitchableStorage extends MemoryStorage {
  /** When true, every `get` throws a transient StorageError. */
  failing = false;

  override async get(key: string, signal?: AbortSignal) {
    if (this.failing) throw new StorageError("get", key, "connection refused", true);
    return super.get(key, signal);
  }
}
