// SPDX-License-Identifier: Apache-2.0
/**
 * Crash-safe file writes for the agent: content goes to a hidden temporary file beside the target,
 * is fsynced, and only then renamed (or hard-linked) into place, so a reader or a crash sees either
 * the old file or the whole new one, never a torn write.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Options for {@link writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** Permission bits of the written file, applied with fchmod so the umask cannot widen or narrow them. */
  mode: number;
  /** Modification time to give the file; defaults to now. */
  mtime?: Date;
  /** When true, fail with an `EEXIST` error instead of replacing an existing file. */
  noClobber?: boolean;
}

/** Longest file name Linux accepts (NAME_MAX), in UTF-8 bytes. */
const NAME_MAX_BYTES = 255;
/** Bytes a temporary name adds to the target's: `.` + `.` + 12 hex digits + `.tmp`. */
const TEMP_NAME_EXTRA_BYTES = 18;

/**
 * Name of a temporary sibling of `path`; hidden (leading dot) so directory listings skip it. The
 * target's name is shortened when needed, so a target of the longest legal name still gets a
 * legal temporary name.
 */
export function tempPathFor(path: string): string {
  let name = basename(path);
  while (Buffer.byteLength(name, "utf8") > NAME_MAX_BYTES - TEMP_NAME_EXTRA_BYTES) {
    // Drop whole code points, never half a surrogate pair.
    name = name.slice(0, name.length - (/[\uDC00-\uDFFF]$/.test(name) ? 2 : 1));
  }
  return join(dirname(path), `.${name}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Writes `data` to a new file at `path` (which must not exist) with `mode`, and fsyncs it. */
export async function writeNewFileSynced(
  path: string,
  data: string | Uint8Array,
  mode: number,
  mtime?: Date,
): Promise<void> {
  // O_NOFOLLOW + O_EXCL: never write through a symlink someone planted at the temp name.
  const fh = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode,
  );
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    if (mtime) await fh.utimes(mtime, mtime);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Fsyncs a directory so renames inside it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically (temp file + fsync + rename + directory fsync). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: WriteFileAtomicOptions,
): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeNewFileSynced(tmp, data, opts.mode, opts.mtime);
    if (opts.noClobber) {
      // link() fails with EEXIST when the target exists: create-once without a check/write race.
      await link(tmp, path);
      await unlink(tmp);
    } else {
      await rename(tmp, path);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dirname(path));
}

/** Removes `path` if it exists; returns whether it did. */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if (isNodeError(err, "ENOENT")) return false;
    throw err;
  }
}

/** True when `err` is a Node system error with the given `code` (e.g. `ENOENT`). */
export function isNodeError(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
