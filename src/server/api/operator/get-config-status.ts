// SPDX-License-Identifier: Apache-2.0
/** GetConfigStatus: which static config object is loaded. */
import type { GetConfigStatusResponse } from "../../../protocol/gen/nstance/v1/operator.js";
import { errorMessage } from "../../../shared/errors.js";
import { configKey } from "../../config-loader.js";
import type { ApiContext } from "../api-context.js";

/**
 * The loaded config's etag and size, and its last-modified time when storage still holds that
 * same version (Go leaves it unset). Works on standbys; a storage failure only drops the time.
 */
export async function getConfigStatus(
  ctx: ApiContext,
  signal?: AbortSignal,
): Promise<GetConfigStatusResponse> {
  const state = ctx.configStore.current().configState;
  let lastModified: Date | undefined;
  try {
    const info = await ctx.storage.head(configKey(ctx.shard), signal);
    if (info?.etag === state.etag) lastModified = info.lastModified;
  } catch (err) {
    ctx.logger.debug("Cannot read config metadata", { err: errorMessage(err) });
  }
  return { etag: state.etag, size: state.size, lastModified };
}
