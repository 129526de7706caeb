// SPDX-License-Identifier: Apache-2.0
/**
 * The health report's `files` map: every received file with its modification time, `empty` for a
 * zero-length file, or the reason it was rejected (from `recv/errors/<name>`, which wins).
 */
import type { Dirent } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../shared/errors.js";
import { isNodeError } from "./atomic-write.js";
import { ERRORS_DIR, WRITE_FILES_LAST } from "./received-file-validation.js";

/** State of one received file; exactly one field, as in the proto's `FileStatus` oneof. */
export type FileStatus = { lastModified: Date } | { empty: true } | { error: string };

/**
 * Reads the status of every received file in `recvDir`. Hidden entries (staging, temporaries),
 * `write-files.last`, directories and symlinks are left out. A missing recv dir gives an empty
 * map. Returns a Map because file names are arbitrary (`__proto__` is a valid one).
 */
export async function fileStatuses(recvDir: string): Promise<Map<string, FileStatus>> {
  const out = new Map<string, FileStatus>();
  for (const entry of await listDir(recvDir)) {
    const name = entry.name;
    if (!entry.isFile() || name.startsWith(".") || name === WRITE_FILES_LAST) continue;
    try {
      const st = await lstat(join(recvDir, name));
      out.set(name, st.size === 0 ? { empty: true } : { lastModified: st.mtime });
    } catch (err) {
      if (isNodeError(err, "ENOENT")) continue; // Replaced between listing and stat.
      out.set(name, { error: describeFsError(err) });
    }
  }
  const errorsDir = join(recvDir, ERRORS_DIR);
  for (const entry of await listDir(errorsDir)) {
    if (!entry.isFile() || entry.name.startsWith(".")) continue;
    let reason: string;
    try {
      reason = (await readFile(join(errorsDir, entry.name), "utf8")).trim() || "rejected";
    } catch (err) {
      if (isNodeError(err, "ENOENT")) continue;
      reason = `cannot read error file: ${describeFsError(err)}`;
    }
    out.set(entry.name, { error: reason });
  }
  return out;
}

/** Renders a status as the seed's JSON payload does: RFC 3339 time, `""` when empty, or `error: …`. */
export function formatFileStatus(status: FileStatus): string {
  if ("error" in status) return `error: ${status.error}`;
  if ("empty" in status) return "";
  return status.lastModified.toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function listDir(dir: string): Promise<Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isNodeError(err, "ENOENT") || isNodeError(err, "ENOTDIR")) return [];
    throw err;
  }
}

/** Short, Go-like wording for common errno codes (`permission denied`). */
function describeFsError(err: unknown): string {
  if (isNodeError(err, "EACCES") || isNodeError(err, "EPERM")) return "permission denied";
  if (isNodeError(err, "EIO")) return "input/output error";
  return errorMessage(err);
}
