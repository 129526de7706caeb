// SPDX-License-Identifier: Apache-2.0
/** Parsing of group sizes given on the command line. */
import { UsageError } from "../usage-error.js";

/** Largest size the Operator API can carry (int32). */
export const MAX_GROUP_SIZE = 2_147_483_647;

/** Parses a group size: a whole number from 0 to {@link MAX_GROUP_SIZE}; UsageError otherwise. */
export function parseGroupSize(what: string, text: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > MAX_GROUP_SIZE) {
    throw new UsageError(
      `invalid ${what} "${text}": want a whole number from 0 to ${MAX_GROUP_SIZE}`,
    );
  }
  return Number(text);
}

/** Parses repeated `--var key=value` flags; UsageError for an entry without `=` or key. */
export function parseVars(entries: readonly string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const entry of entries) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new UsageError(`invalid --var "${entry}": want key=value`);
    vars[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return vars;
}
