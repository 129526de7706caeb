// SPDX-License-Identifier: Apache-2.0
/** Go-syntax durations (`90s`, `1h30m`, `504h`, `250ms`), as the config files use them. */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)/y;

/**
 * Parses a Go duration string into milliseconds. Returns `undefined` when the text is not a valid
 * Go duration (`d` is not a unit: use `504h` for 21 days). `"0"` is zero.
 */
export function parseDurationMs(text: string): number | undefined {
  if (text === "0") return 0;
  let s = text;
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "") return undefined;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    PART.lastIndex = pos;
    const m = PART.exec(s);
    if (!m || m.index !== pos || m[1] === "" || m[1] === ".") return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = PART.lastIndex;
  }
  return sign * total;
}

/** Formats milliseconds as a Go duration string (`1h30m0s` style shortened to `1h30m`). */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return "0s";
  const neg = ms < 0;
  let rest = Math.abs(ms);
  if (rest < 1000) return `${neg ? "-" : ""}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  let out = "";
  if (h) out += `${h}h`;
  if (m) out += `${m}m`;
  if (s) out += `${Number(s.toFixed(3))}s`;
  return (neg ? "-" : "") + out;
}
