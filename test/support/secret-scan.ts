// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: finds secrets where they must not be (logs, the storage bucket). Each known
 * secret is looked for as raw bytes and in the encodings a careless log or record would use
 * (JSON-escaped, base64, base64url, hex; for a PEM, each line of its body too). Built-in patterns
 * find secrets the test never saw: any PEM private key, any JWT. Used after end-to-end runs and
 * by the chaos soak.
 */
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";

/** A secret to look for. */
export interface Secret {
  /** Shown in findings (never the value). */
  name: string;
  value: string | Buffer;
}

/** How a secret's bytes appeared. */
export type SecretEncoding =
  | "raw"
  | "json-escaped"
  | "base64"
  | "base64url"
  | "hex"
  | "pem-body-line"
  | "pattern";

/** One place a secret (or a secret-shaped string) appeared. */
export interface SecretFinding {
  /** The secret's name, or the pattern's name for a pattern match. */
  secret: string;
  /** The file (relative to its scanned directory, prefixed with the directory's label) or text. */
  source: string;
  encoding: SecretEncoding;
  /** Byte offset in the source. */
  offset: number;
}

/** Secret-shaped strings found without knowing their value. */
export const SECRET_PATTERNS: Readonly<Record<string, RegExp>> = {
  "PEM private key": /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/,
  "JWT (nonce)": /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}/,
};

/** What to scan: a directory (recursively, symlinks not followed) or a text. */
export type ScanSource =
  | {
      dir: string;
      /** Prefix of the findings' sources; the directory path by default. */
      label?: string;
      /** Scan only files (paths relative to `dir`) for which this holds. */
      include?: (path: string) => boolean;
    }
  | { text: string | Buffer; name: string };

/** Options for {@link scanForSecrets}. */
export interface ScanOptions {
  /** Look for {@link SECRET_PATTERNS} too (default true), or for these patterns instead. */
  patterns?: boolean | Readonly<Record<string, RegExp>>;
}

/** Encodings of a value shorter than this are not searched: too many false matches. */
export const MIN_SECRET_BYTES = 8;
/** Files larger than this are scanned in their first bytes only. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** The byte strings that betray `value`, by encoding. */
function needles(value: string | Buffer): Array<{ encoding: SecretEncoding; bytes: Buffer }> {
  const raw = Buffer.isBuffer(value) ? value : Buffer.from(value, "utf8");
  const out: Array<{ encoding: SecretEncoding; bytes: Buffer }> = [{ encoding: "raw", bytes: raw }];
  const text = raw.toString("utf8");
  const escaped = JSON.stringify(text).slice(1, -1);
  if (escaped !== text) out.push({ encoding: "json-escaped", bytes: Buffer.from(escaped) });
  const b64 = raw.toString("base64");
  const b64url = raw.toString("base64url");
  out.push({ encoding: "base64", bytes: Buffer.from(b64) });
  // Without `+` or `/`, base64url is base64 without padding: already covered.
  if (b64url !== b64.replace(/=+$/, "")) {
    out.push({ encoding: "base64url", bytes: Buffer.from(b64url) });
  }
  out.push({ encoding: "hex", bytes: Buffer.from(raw.toString("hex")) });
  // A key logged without its PEM armour still shows its base64 lines.
  for (const m of text.matchAll(PEM_BLOCK)) {
    for (const line of m[2]!.split(/\r?\n/)) {
      if (line.length >= 40) out.push({ encoding: "pem-body-line", bytes: Buffer.from(line) });
    }
  }
  return out.filter((n) => n.bytes.length >= MIN_SECRET_BYTES);
}

function patternsOf(opts: ScanOptions): Readonly<Record<string, RegExp>> {
  if (opts.patterns === false) return {};
  if (opts.patterns === undefined || opts.patterns === true) return SECRET_PATTERNS;
  return opts.patterns;
}

/** Scans one text or file content. */
export function scanTextForSecrets(
  content: string | Buffer,
  source: string,
  secrets: readonly Secret[],
  opts: ScanOptions = {},
): SecretFinding[] {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content, "utf8");
  const findings: SecretFinding[] = [];
  for (const s of secrets) {
    for (const n of needles(s.value)) {
      const at = bytes.indexOf(n.bytes);
      if (at >= 0) findings.push({ secret: s.name, source, encoding: n.encoding, offset: at });
    }
  }
  // latin1 maps bytes 1:1 to characters, so offsets stay byte offsets in binary files too.
  const text = bytes.toString("latin1");
  for (const [name, re] of Object.entries(patternsOf(opts))) {
    const m = new RegExp(re.source, re.flags.replace("g", "")).exec(text);
    if (m) findings.push({ secret: name, source, encoding: "pattern", offset: m.index });
  }
  return findings;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return; // Gone meanwhile (a live fleet), or unreadable.
    }
    for (const name of names) {
      const p = join(d, name);
      const st = await lstat(p).catch(() => undefined);
      if (st?.isDirectory()) await walk(p);
      else if (st?.isFile()) out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/**
 * Looks for `secrets` (and, unless disabled, {@link SECRET_PATTERNS}) in the sources: directories
 * (every file, recursively; a string is taken as a directory) and texts. Returns every finding;
 * an empty list means clean.
 */
export async function scanForSecrets(
  sources: ScanSource | string | ReadonlyArray<ScanSource | string>,
  secrets: readonly Secret[],
  opts: ScanOptions = {},
): Promise<SecretFinding[]> {
  const list = (Array.isArray(sources) ? sources : [sources]) as Array<ScanSource | string>;
  const findings: SecretFinding[] = [];
  for (const item of list) {
    const src: ScanSource = typeof item === "string" ? { dir: item } : item;
    if ("text" in src) {
      findings.push(...scanTextForSecrets(src.text, src.name, secrets, opts));
      continue;
    }
    for (const file of await filesUnder(src.dir)) {
      const rel = relative(src.dir, file);
      if (src.include && !src.include(rel)) continue;
      const content = await readFile(file).catch(() => undefined);
      if (content === undefined) continue;
      const shown = `${src.label ?? src.dir}/${rel}`;
      findings.push(
        ...scanTextForSecrets(content.subarray(0, MAX_FILE_BYTES), shown, secrets, opts),
      );
    }
  }
  return findings;
}

/** One line per finding, for assertion messages (names and places only, never values). */
export function formatFindings(findings: readonly SecretFinding[]): string {
  return findings
    .map((f) => `${f.secret} in ${f.source} (${f.encoding}, at byte ${f.offset})`)
    .join("\n");
}
