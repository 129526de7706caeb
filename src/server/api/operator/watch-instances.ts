// SPDX-License-Identifier: Apache-2.0
/** WatchInstances: drain notices of the caller's tenant. */
import type { InstanceEvent } from "../../../protocol/gen/nstance/v1/operator.js";
import { reconcilerPending } from "./reconciler-pending.js";

/** UNIMPLEMENTED until the reconciler emits drain notices (a snapshot alone would mislead). */
// biome-ignore lint/correctness/useYield: ends at once until the reconciler exists.
export async function* watchInstances(): AsyncGenerator<InstanceEvent> {
  throw reconcilerPending("WatchInstances");
}
