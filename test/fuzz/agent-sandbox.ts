// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the agent file fuzzers: hostile file names and contents, a sandbox with traps
 * planted around an agent's directories (symlinks out of recv, a canary directory outside), and
 * snapshots to prove that nothing outside the agent's directories changed and that the recv dir
 * holds either the whole patch or none of it.
 */
import { generateKeyPairSync } from "node:crypto";
import { lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import fc from "fast-check";
import { ERRORS_DIR, WRITE_FILES_LAST } from "../../src/agent/received-file-validation.js";
import { createTestPki } from "../../src/pki/testing.js";

/** Names already present in a sandbox's recv dir (files, symlinks, a directory). */
export const PLANTED = {
  /** A symlink to a file outside the agent's directories. */
  fileLink: "link.txt",
  /** A symlink to a directory outside. */
  dirLink: "linkdir",
  /** A regular file the patches may overwrite. */
  existing: "keep.txt",
  /** A directory (a patch writing this name must be refused). */
  directory: "adir",
} as const;

const pair = generateKeyPairSync("ed25519");
const KEY_PEM = pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const PUB_PEM = pair.publicKey.export({ type: "spki", format: "pem" }).toString();
const CERT_PEM = (await createTestPki("fuzz")).caCertPem;

/** File names an attacker would try, and ones that collide with what the agent keeps in recv. */
export const HOSTILE_NAMES = [
  "../x",
  "../../etc/passwd",
  "/etc/passwd",
  "/tmp/x",
  "a/b",
  "a\\b",
  "..",
  ".",
  "...",
  "..\u2215x",
  ".hidden",
  ".patch-abc",
  ".commit",
  ERRORS_DIR,
  WRITE_FILES_LAST,
  PLANTED.fileLink,
  PLANTED.dirLink,
  PLANTED.existing,
  PLANTED.directory,
  "a\u0000b",
  "a\nb",
  " lead",
  "trail ",
  "\u00e9",
  "e\u0301",
  "\ud800",
  "\ud83d\ude00.txt",
  "CON",
  "x".repeat(255),
  "x".repeat(256),
  `${"\u00e9".repeat(127)}x`,
  `${"\u00e9".repeat(128)}`,
  `${"y".repeat(250)}.json`,
  `${"z".repeat(251)}.key`,
  "ok.txt",
  "ok.json",
  "ok.env",
  "ok.crt",
  "ok.key",
  "ok.pub",
];

/** A file name: hostile, plain, or random. */
export const fileName: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_NAMES) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/),
        fc.constantFrom("", ".txt", ".json", ".env", ".crt", ".key", ".pub"),
      )
      .map(([b, e]) => b + e),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
);

/** File content: valid for some extension, broken, binary, or empty. */
export const fileContent: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .constantFrom(
      CERT_PEM,
      KEY_PEM,
      PUB_PEM,
      `${CERT_PEM}${CERT_PEM}`,
      '{"a": [1, 2, {"b": null}]}',
      "{",
      "A=1\nB=two\n",
      "not an env line\n",
      "",
      CERT_PEM.replace("-----END CERTIFICATE-----", ""),
    )
    .map((s) => Buffer.from(s)),
  fc.string({ maxLength: 64 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
);

/** A sandbox: the agent's directories and the world around them. */
export interface Sandbox {
  root: string;
  recvDir: string;
  identityDir: string;
  keysDir: string;
  /** A directory outside the agent's directories holding canary files. */
  outsideDir: string;
}

/**
 * Lays out `root/agent/{recv,keys,identity}` and `root/outside` with canaries, and plants the
 * {@link PLANTED} traps in recv (symlinks pointing outside, a file, a directory). With
 * `errorsLink`, `recv/errors` itself is a symlink to the outside directory.
 */
export async function plantSandbox(
  root: string,
  opts: { errorsLink?: boolean } = {},
): Promise<Sandbox> {
  const agent = join(root, "agent");
  const sb: Sandbox = {
    root,
    recvDir: join(agent, "recv"),
    identityDir: join(agent, "identity"),
    keysDir: join(agent, "keys"),
    outsideDir: join(root, "outside"),
  };
  await mkdir(join(sb.outsideDir, "dir"), { recursive: true });
  await writeFile(join(sb.outsideDir, "canary.txt"), "canary");
  await writeFile(join(sb.outsideDir, "dir", "inner.txt"), "inner");
  await mkdir(sb.recvDir, { recursive: true });
  await mkdir(sb.keysDir, { recursive: true });
  await symlink(join(sb.outsideDir, "canary.txt"), join(sb.recvDir, PLANTED.fileLink));
  await symlink(join(sb.outsideDir, "dir"), join(sb.recvDir, PLANTED.dirLink));
  await writeFile(join(sb.recvDir, PLANTED.existing), "old");
  await mkdir(join(sb.recvDir, PLANTED.directory));
  await writeFile(join(sb.recvDir, PLANTED.directory, "x"), "x");
  // A key whose name a key request may reuse; symlinked keys must not be followed out either.
  await symlink(join(sb.outsideDir, "canary.txt"), join(sb.keysDir, "linked.key"));
  if (opts.errorsLink) await symlink(join(sb.outsideDir, "dir"), join(sb.recvDir, ERRORS_DIR));
  return sb;
}

/** One entry of a snapshot: a file's bytes, a symlink's target, or a directory. */
export type Entry = { file: string } | { link: string } | { dir: true };

/** Every entry under `dir` (recursive, symlinks not followed), keyed by path relative to `base`. */
export async function snapshot(dir: string, base = dir): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      const st = await lstat(p);
      const key = relative(base, p);
      if (st.isSymbolicLink()) out.set(key, { link: await readlink(p) });
      else if (st.isDirectory()) {
        out.set(key, { dir: true });
        await walk(p);
      } else out.set(key, { file: (await readFile(p)).toString("base64") });
    }
  };
  await walk(dir);
  return out;
}

/** Paths whose entries differ between two snapshots (added, removed or changed). */
export function changedPaths(before: Map<string, Entry>, after: Map<string, Entry>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys]
    .filter((k) => JSON.stringify(before.get(k)) !== JSON.stringify(after.get(k)))
    .sort();
}

/**
 * The recv dir as a reader sees the patch targets: top-level entries other than the agent's own
 * bookkeeping (errors/, write-files.last, hidden staging and temporary files).
 */
export async function recvView(recvDir: string): Promise<Map<string, Entry>> {
  const all = await snapshot(recvDir);
  for (const k of [...all.keys()]) {
    const top = k.split("/")[0]!;
    if (top === ERRORS_DIR || top === WRITE_FILES_LAST || top.startsWith(".")) all.delete(k);
  }
  return all;
}

/** What `view` becomes once `files` (name → bytes) are written. */
export function withFiles(
  view: Map<string, Entry>,
  files: Map<string, Buffer>,
): Map<string, Entry> {
  const next = new Map(view);
  for (const [name, content] of files) next.set(name, { file: content.toString("base64") });
  return next;
}

/** Leftovers of an interrupted patch in recv: staging directories or temporary files. */
export async function leftovers(recvDir: string): Promise<string[]> {
  const names = await readdir(recvDir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(".patch-") || /^\..+\.tmp$/.test(n));
}
