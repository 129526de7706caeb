// SPDX-License-Identifier: Apache-2.0
/**
 * Structured logging. Components receive a {@link Logger} through their options; the default
 * implementation writes JSON lines through pino (or a human text format). Keys are snake_case.
 */
import { Writable } from "node:stream";
import pino from "pino";

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Output formats accepted by `--log-format`. */
export const LOG_FORMATS = ["json", "text"] as const;
/** One of {@link LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Flat structured attributes; an `err` value is serialised with its message, stack and cause. */
export type LogAttrs = Record<string, unknown>;

/** The logging interface every component depends on. */
export interface Logger {
  debug(msg: string, attrs?: LogAttrs): void;
  info(msg: string, attrs?: LogAttrs): void;
  warn(msg: string, attrs?: LogAttrs): void;
  error(msg: string, attrs?: LogAttrs): void;
  /** A logger that adds `attrs` to every line. */
  child(attrs: LogAttrs): Logger;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level. Defaults to `info`. */
  level?: LogLevel;
  /** `json` (default) or `text`. */
  format?: LogFormat;
  /** Attributes on every line (component, version, server_id …). */
  base?: LogAttrs;
  /** Where lines go. Defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

/**
 * Keys whose values are never logged. Secrets travel in fields with these names (nonces, tokens,
 * private keys, file contents), so a careless `logger.info("x", req)` cannot leak them.
 */
export const REDACTED_KEYS = [
  "nonce",
  "registration_nonce_jwt",
  "token",
  "authorization",
  "private_key",
  "private_key_pem",
  "secret",
  "content",
  "encryption_key",
  "password",
];

class PinoLogger implements Logger {
  readonly #p: pino.Logger;
  constructor(p: pino.Logger) {
    this.#p = p;
  }
  debug(msg: string, attrs?: LogAttrs): void {
    this.#p.debug(attrs ?? {}, msg);
  }
  info(msg: string, attrs?: LogAttrs): void {
    this.#p.info(attrs ?? {}, msg);
  }
  warn(msg: string, attrs?: LogAttrs): void {
    this.#p.warn(attrs ?? {}, msg);
  }
  error(msg: string, attrs?: LogAttrs): void {
    this.#p.error(attrs ?? {}, msg);
  }
  child(attrs: LogAttrs): Logger {
    return new PinoLogger(this.#p.child(attrs));
  }
}

/** Turns pino's JSON lines into `time LEVEL msg key=value …` for people at a terminal. */
function textStream(out: NodeJS.WritableStream): Writable {
  let pending = "";
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      pending += chunk.toString("utf8");
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        out.write(`${formatTextLine(line)}\n`);
        nl = pending.indexOf("\n");
      }
      cb();
    },
  });
}

/** Formats one pino JSON line as text; exported for tests. */
export function formatTextLine(jsonLine: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const { time, level, msg, ...rest } = rec;
  const parts = [String(time), String(level).toUpperCase().padEnd(5), String(msg ?? "")];
  for (const [k, v] of Object.entries(rest)) {
    const s = typeof v === "string" ? v : JSON.stringify(v);
    parts.push(`${k}=${s !== undefined && /\s/.test(s) ? JSON.stringify(s) : s}`);
  }
  return parts.join(" ");
}

/** Creates the process logger. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? process.stdout;
  const p = pino(
    {
      level: opts.level ?? "info",
      base: opts.base ?? {},
      messageKey: "msg",
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.errWithCause },
      redact: {
        paths: REDACTED_KEYS.flatMap((k) => [k, `*.${k}`]),
        censor: "[redacted]",
      },
    },
    opts.format === "text" ? textStream(dest) : (dest as pino.DestinationStream),
  );
  return new PinoLogger(p);
}

/** A logger that drops everything; for tests that do not inspect logs. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
