// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin cluster nonce`: mints an operator registration nonce from the signing key in
 * storage. The JWT goes to stdout alone (so it pipes into `register-operator --nonce-file -`) or
 * to `--output`; it is the one token the admin ever prints, on purpose.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Command } from "commander";
import type { CommandContext } from "../command-context.js";
import { adminLogger, globalSettings, parseDurationFlag } from "../global-options.js";
import { renderJson } from "../output.js";
import { DEFAULT_OPERATOR_TENANT, mintOperatorNonce } from "../service/operator-nonce.js";
import { UsageError } from "../usage-error.js";
import {
  addClusterStorageOptions,
  type ClusterStorageFlags,
  loadFlagEncryptionKey,
  openClusterStorage,
  withDeadline,
} from "./cluster-storage.js";

/** Default `--expiry` (the reference's 3h). */
export const DEFAULT_NONCE_EXPIRY = "3h";

interface ClusterNonceFlags extends ClusterStorageFlags {
  clusterId?: string;
  tenant: string;
  expiry: string;
  output?: string;
}

/** Registers `cluster nonce` under `cluster`. */
export function registerClusterNonce(cluster: Command, ctx: CommandContext): void {
  const cmd = cluster
    .command("nonce")
    .description(
      "Mint an operator registration nonce (JWT) from the cluster's signing key in storage",
    )
    .option("--cluster-id <id>", "cluster ID (required)")
    .option("--tenant <tenant>", "tenant of the operator", DEFAULT_OPERATOR_TENANT)
    .option(
      "--expiry <duration>",
      "how long the nonce stays valid (Go duration)",
      DEFAULT_NONCE_EXPIRY,
    )
    .option("--output <path>", "write the nonce to this file (0600) instead of stdout");
  addClusterStorageOptions(cmd).action(async (flags: ClusterNonceFlags, c: Command) => {
    const settings = globalSettings(c, ctx.io);
    if (!flags.clusterId) throw new UsageError("--cluster-id is required");
    const ttlMs = parseDurationFlag("--expiry", flags.expiry);
    const encryptionKey = await loadFlagEncryptionKey(flags, ctx.io);
    const storage = await openClusterStorage(flags, ctx.io, adminLogger(settings, ctx.io));
    const nonce = await withDeadline(settings.timeoutMs, ctx.signal, (signal) =>
      mintOperatorNonce(
        { storage, encryptionKey, clusterId: flags.clusterId!, tenant: flags.tenant, ttlMs },
        signal,
      ),
    );
    const meta = {
      cluster_id: nonce.clusterId,
      tenant: nonce.tenant,
      expires_at: nonce.expiresAt.toISOString(),
    };
    if (flags.output !== undefined) {
      await mkdir(dirname(flags.output), { recursive: true, mode: 0o700 });
      await writeFile(flags.output, `${nonce.token}\n`, { mode: 0o600 });
      await chmod(flags.output, 0o600); // mode applies only when the file is created

      ctx.io.stdout.write(
        settings.json
          ? renderJson({ output: flags.output, ...meta })
          : `Nonce written to ${flags.output} (tenant ${nonce.tenant}, expires ${meta.expires_at})\n`,
      );
      return;
    }
    ctx.io.stdout.write(
      settings.json ? renderJson({ nonce_jwt: nonce.token, ...meta }) : `${nonce.token}\n`,
    );
  });
}
