// SPDX-License-Identifier: Apache-2.0
/**
 * Composition root of nstance-server, read top to bottom: health listener first (503), then storage,
 * SQLite and the configuration load; then the server reports 200. Later stages (election, identity,
 * gRPC, reconciler) hang off the same Closer so shutdown unwinds in reverse order.
 */
import { join } from "node:path";
import { openDatabase } from "../db/database.js";
import { type HealthSnapshot, healthHandler } from "../http/health-endpoint.js";
import { HttpServer } from "../http/http-server.js";
import { Closer } from "../shared/closer.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { createStorage } from "../storage/create-storage.js";
import { type LoadedConfig, loadConfigWithRetry } from "./config-loader.js";
import type { ServerSettings } from "./server-settings.js";

/** Where the health endpoint listens before the shard config says otherwise (seed 000). */
export const DEFAULT_HEALTH_BIND = "0.0.0.0:8990";

/** Options for {@link runServer}. */
export interface RunServerOptions {
  logger: Logger;
  version: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** Overrides the 1 s / 2 s boot retry delays (tests). */
  loadRetryDelaysMs?: readonly number[];
}

type Phase = "loading" | "failed" | "ready" | "stopping";

/**
 * Runs the server until `signal` aborts. A configuration that cannot be loaded after the retries is
 * logged as fatal and the process keeps running with 503 (no exit, so no restart loop).
 */
export async function runServer(
  settings: ServerSettings,
  opts: RunServerOptions,
  signal: AbortSignal,
): Promise<void> {
  const { logger } = opts;
  const closer = new Closer();
  const startedAt = Date.now();
  let phase: Phase = "loading";
  let loaded: LoadedConfig | undefined;
  let failure: string | undefined;

  const snapshot = (): HealthSnapshot => ({
    ready: phase === "ready",
    ...(phase !== "ready" ? { reason: failure ?? phase } : {}),
    phase,
    server_id: settings.id,
    shard: settings.shard,
    version: opts.version,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    ...(loaded
      ? {
          config: {
            etag: loaded.configState.etag,
            source: loaded.configState.source,
            groups_etag: loaded.groupsState.etag,
            groups: loaded.effective.groups.length,
          },
        }
      : {}),
  });

  try {
    // 1. Health listens at once and answers 503 until the configuration is loaded.
    const health = new HttpServer({
      name: "health",
      routes: { "/health": healthHandler(snapshot) },
      fallback: healthHandler(snapshot),
      logger,
    });
    await health.listen(settings.bindOverrides.health ?? DEFAULT_HEALTH_BIND);
    closer.add("health listener", () => health.stop());

    // 2. Storage and the local cache.
    const storage = await createStorage(
      { kind: settings.storage, bucket: settings.bucket, logger },
      opts.env ?? process.env,
    );
    const db = openDatabase({ path: join(settings.cachedir, "db", "nstance.db") });
    closer.add("database", () => {
      db.close();
    });

    // 3. The atomic configuration load, retried; on final failure hang with 503.
    try {
      loaded = await loadConfigWithRetry(
        {
          storage,
          shard: settings.shard,
          cachedir: settings.cachedir,
          db,
          logger,
          ...(opts.loadRetryDelaysMs ? { retryDelaysMs: opts.loadRetryDelaysMs } : {}),
        },
        signal,
      );
    } catch (err) {
      if (signal.aborted) return;
      phase = "failed";
      failure = `configuration failed to load: ${errorMessage(err)}`;
      logger.error("FATAL: configuration failed to load after retries; staying unhealthy (503)", {
        err: errorMessage(err),
        fatal: true,
      });
      await new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => resolve(), { once: true }),
      );
      return;
    }
    const configured = loaded.config.server.bind.health;
    if (
      settings.bindOverrides.health === undefined &&
      configured !== health.address &&
      configured !== DEFAULT_HEALTH_BIND
    ) {
      await health.rebind(configured);
    }
    phase = "ready";
    logger.info("Configuration loaded; server healthy", {
      config_etag: loaded.configState.etag,
      config_source: loaded.configState.source,
      groups: loaded.effective.groups.length,
    });

    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    phase = "stopping";
    logger.info("Shutting down");
    await closer.close();
  }
}
