// SPDX-License-Identifier: Apache-2.0
/** Rules for the names of cluster secrets, shared by the store, the RPCs and template files. */
import { NstanceError } from "../../shared/errors.js";

/** Secrets the cluster itself uses: operators and template files can neither read nor write them. */
export const RESERVED_SECRET_NAMES: readonly string[] = ["ca.key", "registration-nonce.key"];

/** 1–128 characters of letters, digits, `.`, `_`, `-`, not starting with a dot. */
const SECRET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Returns why `name` is not a usable secret name, or `undefined` when it is. */
export function secretNameProblem(name: string): string | undefined {
  if (!SECRET_NAME.test(name)) {
    return "secret name must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'";
  }
  if (RESERVED_SECRET_NAMES.includes(name)) return `secret ${name} is reserved for the cluster`;
  return undefined;
}

/**
 * Throws NstanceError `invalid_argument` for a malformed name and `permission_denied` for a
 * reserved one (so a template cannot ship the CA key to agents).
 */
export function checkSecretName(name: string): void {
  const problem = secretNameProblem(name);
  if (problem === undefined) return;
  throw new NstanceError(
    RESERVED_SECRET_NAMES.includes(name) ? "permission_denied" : "invalid_argument",
    problem,
  );
}
