// SPDX-License-Identifier: Apache-2.0
/**
 * The dashboard of `npm start`: once the local server has created the cluster CA, mints an
 * operator identity straight from the bucket (the admin's direct mode), keeps a generated token
 * in `.nstance/admin.token` (0600), and runs `nstance-admin serve` on 127.0.0.1, port 8995 or the
 * next free one, until the signal aborts.
 */
import { randomBytes } from "node:crypto";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { loadEncryptionKey } from "../../pki/secret-box.js";
import { errorMessage, isAbortError, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import { createStorage } from "../../storage/create-storage.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { TextWriter } from "../command-context.js";
import { readClusterCaCert } from "../service/cluster-secrets.js";
import {
  loadOperatorIdentity,
  type OperatorIdentityPem,
  writeOperatorIdentity,
} from "../service/operator-identity.js";
import { registerOperatorDirect } from "../service/register-operator.js";
import { AdminServe, type AdminServeInfo } from "./admin-serve.js";

/** The first port tried. */
export const DEFAULT_DEV_DASHBOARD_PORT = 8995;
/** Ports tried after it when it is taken. */
export const DEV_DASHBOARD_PORT_TRIES = 20;
/** How often the CA is looked for while the server starts. */
const CA_POLL_MS = 500;

/** Options for {@link runDevDashboard}. */
export interface DevDashboardOptions {
  /** `.nstance/`: the token file and the operator identity live here. */
  root: string;
  /** The file bucket of the local shard. */
  bucket: string;
  shard: string;
  /** The local server's Operator API (`localhost:8993`). */
  operatorAddress: string;
  /** Holds NSTANCE_ENCRYPTION_KEY, which opens the CA key. */
  env: Readonly<Record<string, string | undefined>>;
  /** Where the URL and the login hint are printed. */
  out: TextWriter;
  logger: Logger;
  /** Defaults to {@link DEFAULT_DEV_DASHBOARD_PORT}. */
  port?: number;
}

async function waitForCa(storage: ObjectStorage, signal: AbortSignal): Promise<string> {
  for (;;) {
    try {
      return await readClusterCaCert({ storage }, signal);
    } catch (err) {
      if (!(err instanceof NstanceError && err.code === "not_found")) throw err;
    }
    await sleep(CA_POLL_MS, signal);
  }
}

/** The identity in `dir` when it is usable with this bucket's CA; else a new one, written there. */
async function ensureIdentity(
  dir: string,
  storage: ObjectStorage,
  caCertPem: string,
  env: DevDashboardOptions["env"],
  signal: AbortSignal,
): Promise<OperatorIdentityPem> {
  try {
    const existing = await loadOperatorIdentity(dir);
    if (existing.caCertPem.trim() === caCertPem.trim()) return existing;
  } catch {
    // Missing, expired or from an older bucket: mint a new one below.
  }
  const encryptionKey = await loadEncryptionKey(
    { provider: "env", source: "NSTANCE_ENCRYPTION_KEY" },
    env,
  );
  const { identity } = await registerOperatorDirect({ storage, encryptionKey }, signal);
  await writeOperatorIdentity(dir, identity, { replace: true });
  return identity;
}

/** The token in `path`, created (random, 0600) when missing. */
async function ensureToken(path: string): Promise<void> {
  const existing = await readFile(path, "utf8").catch(() => "");
  if (existing.trim().length < 16) {
    await writeFile(path, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
  }
  await chmod(path, 0o600);
}

/** Runs the dashboard until `signal` aborts; failures are logged, never thrown. */
export async function runDevDashboard(
  opts: DevDashboardOptions,
  signal: AbortSignal,
): Promise<void> {
  const log = opts.logger;
  let serve: AdminServe | undefined;
  try {
    const storage = await createStorage(
      { kind: "file", bucket: opts.bucket, logger: log },
      opts.env,
    );
    const caCertPem = await waitForCa(storage, signal);
    const identityDir = join(opts.root, "admin-identity");
    const identity = await ensureIdentity(identityDir, storage, caCertPem, opts.env, signal);
    const tokenPath = join(opts.root, "admin.token");
    await ensureToken(tokenPath);

    const first = opts.port ?? DEFAULT_DEV_DASHBOARD_PORT;
    let info: AdminServeInfo | undefined;
    for (let port = first; !info && port < first + DEV_DASHBOARD_PORT_TRIES; port++) {
      serve = new AdminServe({
        servers: [{ shard: opts.shard, address: opts.operatorAddress }],
        identity,
        tokenFiles: [{ name: "dev", path: tokenPath }],
        bind: `127.0.0.1:${port}`,
        storage,
        logger: log,
      });
      try {
        info = await serve.start();
      } catch (err) {
        if (!/EADDRINUSE/.test(errorMessage(err))) throw err;
      }
    }
    if (!info) throw new Error(`ports ${first}-${first + DEV_DASHBOARD_PORT_TRIES - 1} are taken`);
    const shownToken = relative(process.cwd(), tokenPath) || tokenPath;
    opts.out.write(
      [
        "",
        `  dashboard: ${info.url}`,
        `             self-signed certificate, SHA-256 ${info.selfSigned?.fingerprint256 ?? ""}`,
        `  log in:    paste the token from ${shownToken} (cat ${shownToken})`,
        `  admin CLI: nstance-admin --servers ${opts.shard}=${opts.operatorAddress} --identity-dir ${relative(process.cwd(), identityDir) || identityDir} group list`,
        "",
      ].join("\n"),
    );
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } catch (err) {
    if (!isAbortError(err) && !signal.aborted) {
      log.error("The dashboard did not start; the server keeps running", {
        err: errorMessage(err),
      });
    }
  } finally {
    await serve?.stop();
  }
}
