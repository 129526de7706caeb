// SPDX-License-Identifier: Apache-2.0
/** Command-line mistakes: the admin prints them with a usage hint and exits 2. */
import { NstanceError } from "../shared/errors.js";

/** A bad command line: a missing, conflicting or malformed flag or argument. */
export class UsageError extends NstanceError {
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_argument", message, options);
    this.name = "UsageError";
  }
}
