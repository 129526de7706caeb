// SPDX-License-Identifier: Apache-2.0
/**
 * The web dashboard's static files (src/admin/dashboard/: plain HTML, CSS and JavaScript, no
 * build step), read once at start and served from memory with an ETag. They hold no data: the
 * page asks the API for everything with the operator's token.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";

/** The dashboard's directory. */
export const DASHBOARD_DIR = new URL("../dashboard/", import.meta.url);

/** URL path → file name and content type of every dashboard file. */
export const DASHBOARD_FILES: Readonly<Record<string, { file: string; contentType: string }>> = {
  "/": { file: "index.html", contentType: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", contentType: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", contentType: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", contentType: "text/css; charset=utf-8" },
};

/** One file ready to send. */
export interface DashboardAsset {
  body: Buffer;
  contentType: string;
  /** Strong ETag of the body. */
  etag: string;
}

/** Reads every dashboard file; throws when one is missing. */
export async function loadDashboardAssets(
  dir: URL = DASHBOARD_DIR,
): Promise<Map<string, DashboardAsset>> {
  const assets = new Map<string, DashboardAsset>();
  for (const [path, { file, contentType }] of Object.entries(DASHBOARD_FILES)) {
    const body = await readFile(new URL(file, dir));
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    assets.set(path, { body, contentType, etag });
  }
  return assets;
}
