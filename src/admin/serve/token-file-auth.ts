// SPDX-License-Identifier: Apache-2.0
/**
 * Bearer tokens for the admin HTTP API, kept in files and read on every request (seed 004's
 * `api.tokens[].token_file`), so a token is rotated by rewriting its file, with no restart. A file
 * readable by group or others is warned about, at start and whenever its mode changes.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename, extname } from "node:path";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";

/** Shortest token accepted: 16 characters (128 bits when random base64url is used). */
export const MIN_TOKEN_LENGTH = 16;

/** One `--token-file`: who the token belongs to (for logs) and where it is kept. */
export interface TokenFile {
  /** API client name used in logs. */
  name: string;
  path: string;
}

/** The outcome of {@link TokenFileAuth.authenticate}. */
export type AuthResult =
  | { ok: true; name: string }
  | { ok: false; reason: "missing" | "malformed" | "invalid" };

/**
 * Parses a `--token-file` value: `name=path`, or a path whose file name without extension is the
 * name (`/etc/nstance/ci-system.token` → `ci-system`).
 */
export function parseTokenFileFlag(text: string): TokenFile {
  const eq = text.indexOf("=");
  const path = eq > 0 ? text.slice(eq + 1) : text;
  const name = eq > 0 ? text.slice(0, eq) : basename(path, extname(path));
  if (path === "" || name === "") {
    throw new NstanceError("invalid_argument", `invalid --token-file "${text}": want [name=]path`);
  }
  return { name, path };
}

/** The token in an `Authorization: Bearer …` header, `undefined` without one, `null` if malformed. */
export function bearerToken(header: string | undefined): string | undefined | null {
  if (header === undefined || header === "") return undefined;
  const m = /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
  return m ? m[1]! : null;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

/** Options for {@link TokenFileAuth}. */
export interface TokenFileAuthOptions {
  files: readonly TokenFile[];
  logger: Logger;
}

/** Checks bearer tokens against the token files, reading them on every request. */
export class TokenFileAuth {
  readonly #files: readonly TokenFile[];
  readonly #logger: Logger;
  /** Last mode seen per path, so a permissive mode is warned about once per change. */
  readonly #modes = new Map<string, number>();
  /** Paths whose last read failed, so a broken file is logged once, not per request. */
  readonly #unreadable = new Set<string>();

  constructor(opts: TokenFileAuthOptions) {
    if (opts.files.length === 0) throw new TypeError("at least one token file is required");
    this.#files = [...opts.files];
    this.#logger = opts.logger;
  }

  /**
   * Reads every token file once at start. Throws NstanceError `invalid_argument` for a file that
   * cannot be read, is empty or holds a token shorter than {@link MIN_TOKEN_LENGTH}; warns about
   * files readable by group or others.
   */
  async checkFiles(): Promise<void> {
    for (const f of this.#files) {
      let token: string;
      try {
        token = await this.#read(f, true);
      } catch (err) {
        throw new NstanceError("invalid_argument", `token file ${f.path}: ${errorMessage(err)}`, {
          cause: err,
        });
      }
      if (token.length < MIN_TOKEN_LENGTH) {
        throw new NstanceError(
          "invalid_argument",
          `token file ${f.path}: the token must be at least ${MIN_TOKEN_LENGTH} characters (e.g. openssl rand -base64 32)`,
        );
      }
    }
  }

  /** Checks an `Authorization` header against the current contents of every token file. */
  async authenticate(header: string | undefined): Promise<AuthResult> {
    const token = bearerToken(header);
    if (token === undefined) return { ok: false, reason: "missing" };
    if (token === null) return { ok: false, reason: "malformed" };
    const given = digest(token);
    const tokens = await Promise.all(
      this.#files.map((f) => this.#read(f, false).catch(() => undefined)),
    );
    let match: string | undefined;
    tokens.forEach((t, i) => {
      // Every file is compared, in constant time, whatever matched before.
      if (t !== undefined && t.length >= MIN_TOKEN_LENGTH && timingSafeEqual(digest(t), given)) {
        match ??= this.#files[i]!.name;
      }
    });
    return match === undefined ? { ok: false, reason: "invalid" } : { ok: true, name: match };
  }

  async #read(f: TokenFile, atStart: boolean): Promise<string> {
    try {
      const [info, text] = await Promise.all([stat(f.path), readFile(f.path, "utf8")]);
      if (this.#unreadable.delete(f.path)) {
        this.#logger.info("Token file readable again", { token_name: f.name, path: f.path });
      }
      const mode = info.mode & 0o777;
      if (this.#modes.get(f.path) !== mode) {
        this.#modes.set(f.path, mode);
        if ((mode & 0o077) !== 0) {
          this.#logger.warn("Token file is readable by group or others; chmod 600 it", {
            token_name: f.name,
            path: f.path,
            mode: `0${mode.toString(8)}`,
          });
        }
      }
      const token = text.trim();
      if (token === "") throw new Error("the file is empty");
      return token;
    } catch (err) {
      if (!atStart && !this.#unreadable.has(f.path)) {
        this.#unreadable.add(f.path);
        this.#logger.error("Token file cannot be read; its token is refused until it can", {
          token_name: f.name,
          path: f.path,
          err: errorMessage(err),
        });
      }
      throw err;
    }
  }
}
