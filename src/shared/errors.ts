// SPDX-License-Identifier: Apache-2.0
/**
 * Typed errors shared by every component. Internal code throws these; the RPC edge maps `code` to a
 * gRPC status in one place (src/protocol/to-grpc-error.ts).
 */

/** Machine-readable error category; mirrors the gRPC status codes we use. */
export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "precondition_failed"
  | "permission_denied"
  | "unauthenticated"
  | "unavailable"
  | "deadline_exceeded"
  | "resource_exhausted"
  | "aborted"
  | "cancelled"
  | "internal";

/** Base error with a code and an optional cause (ES2022). */
export class NstanceError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = "NstanceError";
  }
}

/** A conditional write lost: the object changed (or exists) since it was read. */
export class PreconditionFailedError extends NstanceError {
  readonly key: string;
  constructor(key: string, message = `conditional write lost for ${key}`, options?: ErrorOptions) {
    super("precondition_failed", message, options);
    this.key = key;
    this.name = "PreconditionFailedError";
  }
}

/** Object storage failed (after retries, for transient failures). */
export class StorageError extends NstanceError {
  readonly op: string;
  readonly key: string;
  readonly transient: boolean;
  constructor(
    op: string,
    key: string,
    message: string,
    transient: boolean,
    options?: ErrorOptions,
  ) {
    super("unavailable", `storage ${op} ${key}: ${message}`, options);
    this.op = op;
    this.key = key;
    this.transient = transient;
    this.name = "StorageError";
  }
}

/** A single configuration problem, located in its file where possible. */
export interface ConfigProblem {
  /** Dotted JSON path such as `groups.default.web.template`; empty for whole-file problems. */
  path: string;
  message: string;
  file?: string;
  line?: number;
  column?: number;
}

/** Renders a problem as `file:line:column: path: message`. */
export function formatConfigProblem(p: ConfigProblem): string {
  const where = p.file
    ? p.line !== undefined
      ? `${p.file}:${p.line}:${p.column ?? 1}: `
      : `${p.file}: `
    : "";
  return `${where}${p.path ? `${p.path}: ` : ""}${p.message}`;
}

/** Configuration failed to parse or validate; carries every problem found. */
export class ConfigError extends NstanceError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[], options?: ErrorOptions) {
    super(
      "invalid_argument",
      problems.length === 1
        ? formatConfigProblem(problems[0]!)
        : `${problems.length} configuration problems:\n${problems.map((p) => `  ${formatConfigProblem(p)}`).join("\n")}`,
      options,
    );
    this.problems = problems;
    this.name = "ConfigError";
  }
}

/** Thrown by a component method called in a state that does not allow it. */
export class IllegalStateError extends NstanceError {
  constructor(message: string) {
    super("precondition_failed", message);
    this.name = "IllegalStateError";
  }
}

/** Wraps an error that retrying cannot fix. */
export class PermanentError extends NstanceError {
  constructor(message: string, options?: ErrorOptions) {
    super("internal", message, options);
    this.name = "PermanentError";
  }
}

/** Returns the message of anything thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** True for the errors an aborted AbortSignal produces. */
export function isAbortError(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.name === "AbortError" ||
      err.name === "TimeoutError" ||
      (err as { code?: string }).code === "ABORT_ERR")
  );
}
