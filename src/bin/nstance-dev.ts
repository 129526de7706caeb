// SPDX-License-Identifier: Apache-2.0
/**
 * `npm start`: a one-shard local deployment on file storage under `./.nstance/`, seeded with
 * `examples/local.jsonc` on first run, with the admin dashboard (`nstance-admin serve`) beside it.
 * Everything binds to 127.0.0.1. Ctrl-C stops it.
 */
// The AWS SDK warns about Node 20 on every start; the project pins Node 20 deliberately.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { applyEdits, modify } from "jsonc-parser";
import { runDevDashboard } from "../admin/serve/dev-dashboard.js";
import { runServer } from "../server/main.js";
import { createLogger } from "../shared/logger.js";
import { runInBackground } from "../shared/run-in-background.js";
import { VERSION } from "../shared/version.js";

const root = resolve(process.env.NSTANCE_DEV_DIR ?? ".nstance");
const bucket = join(root, "bucket");
const shard = "local";

async function exists(p: string): Promise<boolean> {
  return readFile(p).then(
    () => true,
    () => false,
  );
}

await mkdir(join(bucket, "config"), { recursive: true });
const configPath = join(bucket, "config", `${shard}.jsonc`);
if (!(await exists(configPath))) {
  // The example as it is, with the local provider's state kept beside the bucket (the cleanup below
  // and NSTANCE_DEV_DIR rely on it).
  const example = await readFile(resolve("examples/local.jsonc"), "utf8");
  const edit = modify(
    example,
    ["shard", "infra", "options"],
    { state_dir: join(root, "local-instances") },
    {
      formattingOptions: { insertSpaces: true, tabSize: 2 },
    },
  );
  await writeFile(configPath, applyEdits(example, edit));
}

// The cluster encryption key for secrets at rest: generated once, kept beside the bucket, never logged.
const keyPath = join(root, "encryption.key");
if (!(await exists(keyPath))) {
  await writeFile(keyPath, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
  await chmod(keyPath, 0o600);
}
// examples/local.jsonc reads the key from NSTANCE_ENCRYPTION_KEY (base64 of 32 bytes).
const env = {
  ...process.env,
  NSTANCE_ENCRYPTION_KEY:
    process.env.NSTANCE_ENCRYPTION_KEY ?? (await readFile(keyPath, "utf8")).trim(),
};

const logger = createLogger({
  level: process.env.NSTANCE_LOG_LEVEL === "debug" ? "debug" : "info",
  format: process.env.NSTANCE_LOG_FORMAT === "json" ? "json" : "text",
  base: { component: "nstance-server", version: VERSION, server_id: "local-1", shard },
});
const ac = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => ac.abort(new Error(sig)));

process.stdout.write(
  [
    "",
    `nstance ${VERSION} — local shard "${shard}" on file storage`,
    `  bucket:   ${bucket}`,
    `  config:   ${configPath}`,
    `  cache:    ${join(root, "cache")}`,
    "  health:   http://localhost:8990/health",
    "  stop:     Ctrl-C",
    "",
  ].join("\n"),
);

// The dashboard starts once the server has created the cluster CA, and prints its URL then.
const dashboard = runInBackground(
  "dashboard",
  () =>
    runDevDashboard(
      {
        root,
        bucket,
        shard,
        operatorAddress: "localhost:8993",
        env,
        out: process.stdout,
        logger: createLogger({
          level: process.env.NSTANCE_LOG_LEVEL === "debug" ? "debug" : "info",
          format: process.env.NSTANCE_LOG_FORMAT === "json" ? "json" : "text",
          base: { component: "nstance-admin", version: VERSION },
        }),
      },
      ac.signal,
    ),
  logger,
);

try {
  await runServer(
    {
      id: "local-1",
      shard,
      storage: "file",
      bucket,
      prefix: `shard/${shard}/`,
      cachedir: join(root, "cache"),
      logLevel: "info",
      logFormat: "text",
      heartbeatIntervalMs: 5_000,
      heartbeatTtlMs: 30_000,
      bindOverrides: {
        health: "127.0.0.1:8990",
        election: "127.0.0.1:8991",
        registration: "127.0.0.1:8992",
        operator: "127.0.0.1:8993",
        agent: "127.0.0.1:8994",
      },
    },
    { logger, version: VERSION, env },
    ac.signal,
  );
} finally {
  ac.abort(new Error("server stopped"));
  await dashboard;
  // Local instances are processes that outlive a server restart by design; `npm start` started
  // them, so Ctrl-C removes them too.
  const { LocalProvider } = await import("../providers/local/local-provider.js");
  const local = new LocalProvider({ stateDir: join(root, "local-instances") });
  const instances = await local.listInstances({ clusterId: "local", shard });
  await Promise.all(instances.map((i) => local.deleteInstance(i.instanceId, i.providerInstanceId)));
  await local.close();
  if (instances.length > 0) process.stdout.write(`Stopped ${instances.length} local instance(s)\n`);
}
