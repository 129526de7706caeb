// SPDX-License-Identifier: Apache-2.0
/** Subnet choice for a new instance (reference §5.13): the first subnet of the pool with room. */
import type { Provider } from "../../providers/provider.js";
import { NstanceError } from "../../shared/errors.js";

/** No subnet of a pool has room for another instance; the reconciler defers creates. */
export class NoSubnetCapacityError extends NstanceError {
  readonly pool: string;
  constructor(pool: string, subnets: readonly string[]) {
    super(
      "resource_exhausted",
      `no subnet of pool ${pool} has capacity (checked ${subnets.join(", ") || "none"})`,
    );
    this.pool = pool;
    this.name = "NoSubnetCapacityError";
  }
}

/**
 * The first subnet of `subnets` (in pool order) the provider says has room. Throws
 * {@link NoSubnetCapacityError} when none has.
 */
export async function pickSubnet(
  provider: Pick<Provider, "checkSubnetCapacity">,
  pool: string,
  subnets: readonly string[],
  signal?: AbortSignal,
): Promise<string> {
  for (const subnet of subnets) {
    if (await provider.checkSubnetCapacity(subnet, signal)) return subnet;
  }
  throw new NoSubnetCapacityError(pool, subnets);
}
