// SPDX-License-Identifier: Apache-2.0
/** Operator registration nonces, minted straight from the cluster's nonce signing key. */
import { decodeJwt } from "jose";
import { identifierProblem } from "../../config/identifier.js";
import { CA_CERT_OBJECT, DEFAULT_CLUSTER_PREFIX } from "../../pki/cluster-identity.js";
import { mintNonceJwt } from "../../pki/nonce-jwt.js";
import { NstanceError } from "../../shared/errors.js";
import { type ClusterStorage, caClusterId, loadNonceSigningKey } from "./cluster-secrets.js";

/** Lifetime of an operator nonce (the reference's 3h). */
export const DEFAULT_OPERATOR_NONCE_TTL_MS = 3 * 3_600_000;
/** Tenant of an operator when none is given. */
export const DEFAULT_OPERATOR_TENANT = "default";

/** Options for {@link mintOperatorNonce}. */
export interface MintOperatorNonceOptions extends ClusterStorage {
  /** Cluster ID: the nonce's `sub` and `cluster_id`. */
  clusterId: string;
  /** Defaults to {@link DEFAULT_OPERATOR_TENANT}. */
  tenant?: string;
  /** Defaults to {@link DEFAULT_OPERATOR_NONCE_TTL_MS}. */
  ttlMs?: number;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/** A minted operator nonce. */
export interface OperatorNonce {
  /** The JWT: a bearer credential until it is used or expires. */
  token: string;
  clusterId: string;
  tenant: string;
  expiresAt: Date;
}

/**
 * Mints an operator registration nonce (kind `operator`, sub = cluster ID) signed with
 * `cluster/secret/registration-nonce.key`. When the bucket's CA names another cluster, throws
 * NstanceError `invalid_argument`: a nonce for the wrong cluster could never be used.
 */
export async function mintOperatorNonce(
  opts: MintOperatorNonceOptions,
  signal?: AbortSignal,
): Promise<OperatorNonce> {
  const tenant = opts.tenant ?? DEFAULT_OPERATOR_TENANT;
  const ttlMs = opts.ttlMs ?? DEFAULT_OPERATOR_NONCE_TTL_MS;
  for (const [what, value] of [
    ["cluster ID", opts.clusterId],
    ["tenant", tenant],
  ] as const) {
    const problem = identifierProblem(value);
    if (problem) throw new NstanceError("invalid_argument", `${what} "${value}" ${problem}`);
  }
  if (!(ttlMs > 0)) throw new NstanceError("invalid_argument", "nonce lifetime must be positive");
  const caCert = await opts.storage.get(
    (opts.prefix ?? DEFAULT_CLUSTER_PREFIX) + CA_CERT_OBJECT,
    signal,
  );
  const caCluster = caCert ? caClusterId(caCert.body.toString("utf8")) : undefined;
  if (caCluster !== undefined && caCluster !== opts.clusterId) {
    throw new NstanceError(
      "invalid_argument",
      `${opts.storage.description} holds cluster "${caCluster}", not "${opts.clusterId}"`,
    );
  }
  const signingKey = await loadNonceSigningKey(opts, signal);
  const now = opts.now ?? new Date();
  const token = await mintNonceJwt(
    {
      subject: opts.clusterId,
      kind: "operator",
      clusterId: opts.clusterId,
      shard: "",
      group: "",
      onDemand: false,
      tenant,
      configHash: "",
    },
    { signingKey, ttlMs, now },
  );
  return {
    token,
    clusterId: opts.clusterId,
    tenant,
    expiresAt: new Date((decodeJwt(token).exp ?? 0) * 1000),
  };
}
