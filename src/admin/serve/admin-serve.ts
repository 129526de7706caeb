// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin serve` as a component: checks the token files, makes a self-signed certificate
 * when none is given, connects the Operator API clients (mutual TLS with the operator identity)
 * and the optional bucket reader, and runs the HTTPS listener with the API and the dashboard.
 * Used by the `serve` command and by `npm start`.
 */
import { splitHostPort } from "../../http/http-server.js";
import type { Logger } from "../../shared/logger.js";
import type { RateLimit } from "../../shared/rate-limiter.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { AdminService } from "../service/admin-service.js";
import type { OperatorIdentityPem } from "../service/operator-identity.js";
import type { ShardServer } from "../service/shard-servers.js";
import type { AdminApiBackend } from "./admin-api.js";
import { AdminHttpServer, DEFAULT_ADMIN_BIND } from "./admin-http-server.js";
import { loadDashboardAssets } from "./dashboard-assets.js";
import { createSelfSignedCertificate } from "./self-signed-certificate.js";
import { DEFAULT_SHARD_PREFIX, readShardLeadership, shardPrefix } from "./shard-leadership.js";
import { type TokenFile, TokenFileAuth } from "./token-file-auth.js";

/** Options for {@link AdminServe}. */
export interface AdminServeOptions {
  /** Every shard's Operator API (`--servers`). */
  servers: readonly ShardServer[];
  identity: OperatorIdentityPem;
  /** At least one; each must hold a token of at least MIN_TOKEN_LENGTH characters at start. */
  tokenFiles: readonly TokenFile[];
  /** Listen address; defaults to DEFAULT_ADMIN_BIND. */
  bind?: string;
  /** Certificate and key (PEM); without them a self-signed certificate is made. */
  tls?: { certPem: string; keyPem: string };
  rateLimit?: RateLimit;
  publicDocs?: boolean;
  /** The cluster's bucket, to show each shard's leader and servers. */
  storage?: ObjectStorage;
  /** Shard prefix template; defaults to DEFAULT_SHARD_PREFIX. */
  prefixTemplate?: string;
  /** Deadline of each Operator API call. */
  timeoutMs?: number;
  logger: Logger;
}

/** What {@link AdminServe.start} reports. */
export interface AdminServeInfo {
  url: string;
  address: string;
  /** Set when the certificate was made at start: the SHA-256 fingerprint and the names. */
  selfSigned?: { fingerprint256: string; hosts: string[]; certPem: string };
}

type State = "new" | "starting" | "running" | "stopped";

/** The admin HTTPS server with its clients; see the file comment. */
export class AdminServe {
  readonly #opts: AdminServeOptions;
  #state: State = "new";
  #http: AdminHttpServer | undefined;
  #admin: AdminService | undefined;

  constructor(opts: AdminServeOptions) {
    if (opts.servers.length === 0) throw new TypeError("servers is required");
    this.#opts = opts;
  }

  /**
   * Starts serving. Throws NstanceError `invalid_argument` for an unusable token file and
   * `unavailable` when the address cannot be bound; nothing is left running then.
   */
  async start(): Promise<AdminServeInfo> {
    if (this.#state !== "new") throw new TypeError("AdminServe can be started once");
    this.#state = "starting";
    const o = this.#opts;
    try {
      const auth = new TokenFileAuth({ files: o.tokenFiles, logger: o.logger });
      await auth.checkFiles();
      const bindHost = splitHostPort(o.bind ?? DEFAULT_ADMIN_BIND).host;
      // A certificate for the bind address too, unless that is a wildcard.
      const selfSigned = o.tls
        ? undefined
        : await createSelfSignedCertificate(["0.0.0.0", "::"].includes(bindHost) ? [] : [bindHost]);
      this.#admin = new AdminService({
        servers: o.servers,
        identity: o.identity,
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        logger: o.logger,
      });
      const storage = o.storage;
      const template = o.prefixTemplate ?? DEFAULT_SHARD_PREFIX;
      const backend: AdminApiBackend = {
        servers: o.servers,
        admin: this.#admin,
        ...(storage
          ? {
              leadership: (shard: string, signal?: AbortSignal) =>
                readShardLeadership(storage, shardPrefix(template, shard), Date.now(), signal),
            }
          : {}),
      };
      this.#http = new AdminHttpServer({
        ...(o.bind !== undefined ? { bind: o.bind } : {}),
        tls: o.tls ?? selfSigned!,
        auth,
        backend,
        ...(o.rateLimit ? { rateLimit: o.rateLimit } : {}),
        ...(o.publicDocs ? { publicDocs: true } : {}),
        dashboard: await loadDashboardAssets(),
        logger: o.logger,
      });
      await this.#http.start();
      this.#state = "running";
      return {
        url: this.#http.url,
        address: this.#http.address,
        ...(selfSigned
          ? {
              selfSigned: {
                fingerprint256: selfSigned.fingerprint256,
                hosts: selfSigned.hosts,
                certPem: selfSigned.certPem,
              },
            }
          : {}),
      };
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops the listener and closes the Operator API connections. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    await this.#http?.stop();
    await this.#admin?.stop();
  }
}
