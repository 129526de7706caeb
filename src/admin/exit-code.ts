// SPDX-License-Identifier: Apache-2.0
/** The admin's exit codes, which scripts may rely on (docs/admin.md lists them). */
import { NstanceError } from "../shared/errors.js";
import type { ShardResult } from "./service/admin-service.js";
import { RemoteError } from "./service/remote-error.js";
import { UsageError } from "./usage-error.js";

/** Every exit code the admin uses. */
export const EXIT_CODES = {
  /** Everything succeeded. */
  ok: 0,
  /** The operation failed: the server (or storage) said no, or something unexpected broke. */
  failed: 1,
  /** Usage error: a missing, conflicting or malformed flag, argument or local input file. */
  usage: 2,
  /** A server or the storage could not be reached, or did not answer in time. */
  unavailable: 3,
  /** The group, object or shard asked for does not exist. */
  notFound: 4,
} as const;

/** One of {@link EXIT_CODES}. */
export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];

/**
 * The exit code for an error. An `invalid_argument` raised locally (a bad key file, a malformed
 * identity) is a usage error; the same code from a server is a refused operation.
 */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError) return EXIT_CODES.usage;
  if (!(err instanceof NstanceError)) return EXIT_CODES.failed;
  switch (err.code) {
    case "not_found":
      return EXIT_CODES.notFound;
    case "unavailable":
    case "deadline_exceeded":
      return EXIT_CODES.unavailable;
    case "invalid_argument":
      return err instanceof RemoteError ? EXIT_CODES.failed : EXIT_CODES.usage;
    default:
      return EXIT_CODES.failed;
  }
}

/**
 * The exit code for a fanned-out command: 0 when every shard succeeded; otherwise the failing
 * shards' code when they agree, else 1.
 */
export function exitCodeForResults(results: readonly ShardResult<unknown>[]): ExitCode {
  const codes = new Set<ExitCode>();
  for (const r of results) if (!r.ok) codes.add(exitCodeFor(r.error));
  if (codes.size === 0) return EXIT_CODES.ok;
  if (codes.size === 1) return [...codes][0]!;
  return EXIT_CODES.failed;
}
