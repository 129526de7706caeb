// SPDX-License-Identifier: Apache-2.0
/**
 * The mass-failure guard (beyond the reference, issue 7): when more of a group is unhealthy at once
 * than a failure of single VMs explains (a bad image, a network split, a provider answering "not
 * found" for everything), replacing them would churn the fleet for nothing, so replacements stop
 * and an alert is raised until the share falls.
 */
import type { MassFailureGuard } from "./plan-types.js";

/**
 * Default guard: heal while at most half of the group, or at least 1 instance, is unhealthy. A
 * 1- or 3-instance group with one failure heals; 2 of 3 trips the guard; 5 of 10 heals, 6 trips.
 */
export const DEFAULT_MASS_FAILURE_GUARD: MassFailureGuard = {
  maxUnhealthyFraction: 0.5,
  maxUnhealthyCount: 1,
};

/** Largest unhealthy count the guard still replaces for a group of `size`. */
export function massFailureLimit(guard: MassFailureGuard, size: number): number {
  return Math.max(guard.maxUnhealthyCount, guard.maxUnhealthyFraction * size);
}

/** True when `unhealthyCount` of a group of `size` is beyond the guard: stop replacing. */
export function isMassFailure(
  guard: MassFailureGuard,
  size: number,
  unhealthyCount: number,
): boolean {
  return unhealthyCount > massFailureLimit(guard, size);
}
