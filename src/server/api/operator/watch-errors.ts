// SPDX-License-Identifier: Apache-2.0
/** WatchErrors: provider, create and delete failures of the caller's tenant. */
import type { ErrorEvent } from "../../../protocol/gen/nstance/v1/operator.js";
import { reconcilerPending } from "./reconciler-pending.js";

/** UNIMPLEMENTED until the reconciler reports provider failures. */
// biome-ignore lint/correctness/useYield: ends at once until the reconciler exists.
export async function* watchErrors(): AsyncGenerator<ErrorEvent> {
  throw reconcilerPending("WatchErrors");
}
