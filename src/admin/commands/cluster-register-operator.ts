// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin cluster register-operator`: gets an operator certificate and writes the identity
 * directory. With `--nonce`/`--nonce-file` it registers over the Registration API (the key is
 * generated here and never leaves this machine); without, it mints the certificate directly from
 * the CA key in storage (the reference's direct mode).
 */
import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { parseHostPort } from "../../config/host-port.js";
import { errorMessage } from "../../shared/errors.js";
import type { AdminIo, CommandContext } from "../command-context.js";
import { adminLogger, globalSettings, parseDurationFlag } from "../global-options.js";
import { renderJson, renderKeyValues } from "../output.js";
import { readClusterCaCert } from "../service/cluster-secrets.js";
import {
  IDENTITY_FILES,
  prepareIdentityDir,
  writeOperatorIdentity,
} from "../service/operator-identity.js";
import { DEFAULT_OPERATOR_TENANT } from "../service/operator-nonce.js";
import {
  type RegisteredOperator,
  registerOperatorDirect,
  registerOperatorWithNonce,
} from "../service/register-operator.js";
import { UsageError } from "../usage-error.js";
import {
  addClusterStorageOptions,
  type ClusterStorageFlags,
  hasStorageFlags,
  loadFlagEncryptionKey,
  openClusterStorage,
  withDeadline,
} from "./cluster-storage.js";

/** Default `--ttl` of a directly minted certificate (the reference's 8760h). */
export const DEFAULT_DIRECT_TTL = "8760h";

interface RegisterOperatorFlags extends ClusterStorageFlags {
  nonce?: string;
  nonceFile?: string;
  registrationAddr?: string;
  caFile?: string;
  tenant?: string;
  ttl?: string;
  operatorId?: string;
  clusterId?: string;
  force: boolean;
}

/** Registers `cluster register-operator` under `cluster`. */
export function registerClusterRegisterOperator(cluster: Command, ctx: CommandContext): void {
  const cmd = cluster
    .command("register-operator")
    .description(
      "Get an operator certificate and write ca.crt, identity.key and identity.crt to --identity-dir: " +
        "with a nonce over the Registration API, or directly from the CA key in storage",
    )
    .option("--nonce <jwt>", "nonce mode: the registration nonce (prefer --nonce-file)")
    .option("--nonce-file <path>", "nonce mode: file holding the nonce, or - for stdin")
    .option("--registration-addr <host:port>", "nonce mode: a server's Registration API")
    .option(
      "--ca-file <path>",
      "nonce mode: cluster CA certificate to trust (else read from --storage/--bucket)",
    )
    .option(
      "--tenant <tenant>",
      `direct mode: operator tenant (default ${DEFAULT_OPERATOR_TENANT})`,
    )
    .option("--ttl <duration>", `direct mode: certificate lifetime (default ${DEFAULT_DIRECT_TTL})`)
    .option("--operator-id <id>", "direct mode: certificate CN (default: a new opr… ID)")
    .option("--cluster-id <id>", "direct mode: refuse a bucket whose CA belongs to another cluster")
    .option("--force", "replace an identity already in --identity-dir", false);
  addClusterStorageOptions(cmd).action(async (flags: RegisterOperatorFlags, c: Command) => {
    const settings = globalSettings(c, ctx.io);
    const nonceMode = flags.nonce !== undefined || flags.nonceFile !== undefined;
    if (!nonceMode && !hasStorageFlags(flags)) {
      throw new UsageError(
        "give --nonce or --nonce-file with --registration-addr (nonce mode), " +
          "or --storage and --bucket with the encryption key (direct mode)",
      );
    }
    const logger = adminLogger(settings, ctx.io);
    let registered: RegisteredOperator;
    if (nonceMode) {
      checkNonceModeFlags(flags);
      const nonce = await readNonce(flags, ctx.io);
      // Check the directory before spending the nonce: it binds to the first key that uses it.
      await prepareIdentityDir(settings.identityDir, { replace: flags.force });
      let caCertPem: string;
      if (flags.caFile !== undefined) {
        caCertPem = await readLocalFile("--ca-file", flags.caFile);
      } else if (hasStorageFlags(flags)) {
        const storage = await openClusterStorage(flags, ctx.io, logger);
        caCertPem = await withDeadline(settings.timeoutMs, ctx.signal, (signal) =>
          readClusterCaCert({ storage }, signal),
        );
      } else {
        throw new UsageError(
          "nonce mode needs the cluster CA: give --ca-file, or --storage and --bucket",
        );
      }
      registered = await registerOperatorWithNonce(
        {
          address: flags.registrationAddr!,
          caCertPem,
          nonce,
          timeoutMs: settings.timeoutMs,
        },
        ctx.signal,
      );
    } else {
      const nonceOnly = [
        ["--registration-addr", flags.registrationAddr],
        ["--ca-file", flags.caFile],
      ].filter(([, v]) => v !== undefined);
      if (nonceOnly.length > 0) {
        throw new UsageError(
          `${nonceOnly.map(([f]) => f).join(", ")} only apply to nonce mode (give --nonce or --nonce-file)`,
        );
      }
      const ttlMs = parseDurationFlag("--ttl", flags.ttl ?? DEFAULT_DIRECT_TTL);
      const encryptionKey = await loadFlagEncryptionKey(flags, ctx.io);
      await prepareIdentityDir(settings.identityDir, { replace: flags.force });
      const storage = await openClusterStorage(flags, ctx.io, logger);
      registered = await withDeadline(settings.timeoutMs, ctx.signal, (signal) =>
        registerOperatorDirect(
          {
            storage,
            encryptionKey,
            tenant: flags.tenant,
            ttlMs,
            operatorId: flags.operatorId,
            clusterId: flags.clusterId,
          },
          signal,
        ),
      );
    }
    await writeOperatorIdentity(settings.identityDir, registered.identity, { replace: true });
    const summary = {
      mode: nonceMode ? "nonce" : "direct",
      client_id: registered.clientId,
      tenant: registered.tenant,
      serial: registered.serial,
      expires_at: registered.expiresAt.toISOString(),
      identity_dir: settings.identityDir,
    };
    ctx.io.stdout.write(
      settings.json
        ? renderJson(summary)
        : `Operator registered (${summary.mode} mode)\n${renderKeyValues([
            ["Client ID", summary.client_id],
            ["Tenant", summary.tenant],
            ["Serial", summary.serial],
            ["Expires at", summary.expires_at],
            ["Identity", `${summary.identity_dir} (${Object.values(IDENTITY_FILES).join(", ")})`],
          ])}`,
    );
  });
}

function checkNonceModeFlags(flags: RegisterOperatorFlags): void {
  if (flags.nonce !== undefined && flags.nonceFile !== undefined) {
    throw new UsageError("--nonce and --nonce-file are mutually exclusive");
  }
  const directOnly = (
    [
      ["--tenant", flags.tenant],
      ["--ttl", flags.ttl],
      ["--operator-id", flags.operatorId],
      ["--cluster-id", flags.clusterId],
      ["--encryption-key-env", flags.encryptionKeyEnv],
      ["--encryption-key-file", flags.encryptionKeyFile],
    ] as const
  ).filter(([, v]) => v !== undefined);
  if (directOnly.length > 0) {
    throw new UsageError(
      `${directOnly.map(([f]) => f).join(", ")} only apply to direct mode; in nonce mode the nonce and the server decide`,
    );
  }
  if (flags.registrationAddr === undefined) {
    throw new UsageError("nonce mode needs --registration-addr host:port");
  }
  const hp = parseHostPort(flags.registrationAddr);
  if (!hp || hp.host === "" || hp.port === 0) {
    throw new UsageError(
      `invalid --registration-addr "${flags.registrationAddr}": want host:port with a host and a non-zero port`,
    );
  }
}

async function readLocalFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${flag} ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

async function readNonce(flags: RegisterOperatorFlags, io: AdminIo): Promise<string> {
  let text: string;
  if (flags.nonce !== undefined) {
    text = flags.nonce;
  } else if (flags.nonceFile === "-") {
    if (!io.readStdin) throw new UsageError("--nonce-file -: no standard input");
    text = await io.readStdin();
  } else {
    text = await readLocalFile("--nonce-file", flags.nonceFile!);
  }
  const nonce = text.trim();
  if (nonce === "") throw new UsageError("the nonce is empty");
  return nonce;
}
