// SPDX-License-Identifier: Apache-2.0
/** The answer of instance RPCs whose behaviour needs the reconciler and a provider. */
import { UnimplementedError } from "../handler.js";

/** Thrown (UNIMPLEMENTED) by RPCs that pass every check but need the reconciler to act. */
export function reconcilerPending(rpc: string): UnimplementedError {
  return new UnimplementedError(`${rpc} arrives with the reconciler`);
}
