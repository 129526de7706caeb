// SPDX-License-Identifier: Apache-2.0
/** The one sanctioned way to start work without awaiting it. */
import { isAbortError } from "./errors.js";
import type { Logger } from "./logger.js";

/**
 * Runs `fn` without awaiting it; a rejection is logged (aborts are ignored) instead of becoming an
 * unhandled rejection. Returns the promise so owners can still await it on stop.
 */
export function runInBackground(
  name: string,
  fn: () => Promise<unknown>,
  logger: Logger,
): Promise<void> {
  return fn().then(
    () => undefined,
    (err: unknown) => {
      if (!isAbortError(err)) logger.error("Background task failed", { task: name, err });
    },
  );
}
