// SPDX-License-Identifier: Apache-2.0
/**
 * Registration nonce JWTs: the bootstrap credential an agent or operator exchanges for a client
 * certificate. EdDSA (Ed25519) signed by the cluster's registration-nonce key, issuer
 * `nstance-server`. Single use is enforced by the registration service, not here.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { NstanceError } from "../shared/errors.js";

/** `iss` of every nonce. */
export const NONCE_ISSUER = "nstance-server";
/** Allowed clock difference between the servers that mint and verify a nonce. */
export const DEFAULT_NONCE_CLOCK_TOLERANCE_MS = 30_000;

/** Who a nonce registers. */
export type NonceKind = "agent" | "operator";

/** The claims of a nonce (camelCase here; snake_case in the JWT). */
export interface NonceClaims {
  /** `sub`: the instance ID (agents) or the cluster ID (operators). */
  subject: string;
  /** `kind`. */
  kind: NonceKind;
  /** `cluster_id`. */
  clusterId: string;
  /** `shard`: the shard that created the instance; empty for operators. */
  shard: string;
  /** `group`: the instance's group; empty for operators. */
  group: string;
  /** `on_demand`. */
  onDemand: boolean;
  /** `tenant`. */
  tenant: string;
  /** `config_hash`: the group's runtime config hash at creation; empty for operators. */
  configHash: string;
}

/** A verified nonce: its claims and times. */
export interface VerifiedNonce extends NonceClaims {
  issuedAt: Date;
  notBefore: Date;
  expiresAt: Date;
}

/** Options for {@link mintNonceJwt}. */
export interface MintNonceOptions {
  /** The Ed25519 registration-nonce private key. */
  signingKey: KeyObject;
  /** Lifetime: `garbage_collection.registration_timeout` for agents. */
  ttlMs: number;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/** Options for {@link verifyNonceJwt}. */
export interface VerifyNonceOptions {
  /** The registration-nonce public key (or the private key; its public half is used). */
  verifyKey: KeyObject;
  /** The kind the calling RPC accepts. */
  kind: NonceKind;
  /** This cluster's ID. */
  clusterId: string;
  /** This server's shard; agent nonces must name it. */
  shard?: string;
  /** Verification time. Defaults to now. */
  now?: Date;
  /** Defaults to {@link DEFAULT_NONCE_CLOCK_TOLERANCE_MS}. */
  clockToleranceMs?: number;
}

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

/** Signs a nonce JWT with the given claims. */
export async function mintNonceJwt(claims: NonceClaims, opts: MintNonceOptions): Promise<string> {
  const now = opts.now ?? new Date();
  return new SignJWT({
    kind: claims.kind,
    cluster_id: claims.clusterId,
    shard: claims.shard,
    group: claims.group,
    on_demand: claims.onDemand,
    tenant: claims.tenant,
    config_hash: claims.configHash,
  })
    .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
    .setIssuer(NONCE_ISSUER)
    .setSubject(claims.subject)
    .setIssuedAt(seconds(now))
    .setNotBefore(seconds(now))
    .setExpirationTime(seconds(now) + Math.ceil(opts.ttlMs / 1000))
    .sign(opts.signingKey);
}

function unauthenticated(message: string, cause?: unknown): NstanceError {
  return new NstanceError("unauthenticated", `registration nonce ${message}`, { cause });
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "has expired";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "signature is invalid";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return err.claim === "nbf" ? "is not valid yet" : `claim ${err.claim} is invalid`;
  }
  return "is malformed";
}

function stringClaim(payload: Record<string, unknown>, name: string): string {
  const v = payload[name] ?? "";
  if (typeof v !== "string") throw unauthenticated(`claim ${name} is not a string`);
  return v;
}

/**
 * Verifies a nonce and returns its claims. Errors follow the registration API: a bad signature,
 * expiry, not-yet-valid, wrong issuer, wrong kind or an empty sub/cluster_id/tenant throw
 * NstanceError `unauthenticated`; a nonce of another cluster or shard, or an operator nonce whose
 * sub is not the cluster ID, throws `invalid_argument`. Messages never include the token.
 */
export async function verifyNonceJwt(
  token: string,
  opts: VerifyNonceOptions,
): Promise<VerifiedNonce> {
  let payload: Record<string, unknown>;
  try {
    const key =
      opts.verifyKey.type === "private" ? createPublicKey(opts.verifyKey) : opts.verifyKey;
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ["EdDSA"],
      issuer: NONCE_ISSUER,
      currentDate: opts.now,
      clockTolerance: Math.round(
        (opts.clockToleranceMs ?? DEFAULT_NONCE_CLOCK_TOLERANCE_MS) / 1000,
      ),
      requiredClaims: ["sub", "exp", "nbf", "iat"],
    }));
  } catch (err) {
    throw unauthenticated(describeJoseError(err), err);
  }
  const kind = stringClaim(payload, "kind");
  if (kind !== opts.kind) throw unauthenticated(`is for kind "${kind}", not "${opts.kind}"`);
  const onDemand = payload.on_demand ?? false;
  if (typeof onDemand !== "boolean") throw unauthenticated("claim on_demand is not a boolean");
  const claims: VerifiedNonce = {
    subject: stringClaim(payload, "sub"),
    kind: opts.kind,
    clusterId: stringClaim(payload, "cluster_id"),
    shard: stringClaim(payload, "shard"),
    group: stringClaim(payload, "group"),
    onDemand,
    tenant: stringClaim(payload, "tenant"),
    configHash: stringClaim(payload, "config_hash"),
    issuedAt: new Date(Number(payload.iat) * 1000),
    notBefore: new Date(Number(payload.nbf) * 1000),
    expiresAt: new Date(Number(payload.exp) * 1000),
  };
  for (const [name, value] of [
    ["sub", claims.subject],
    ["cluster_id", claims.clusterId],
    ["tenant", claims.tenant],
  ] as const) {
    if (value === "") throw unauthenticated(`claim ${name} is empty`);
  }
  if (claims.clusterId !== opts.clusterId) {
    throw new NstanceError("invalid_argument", "registration nonce is for another cluster");
  }
  if (opts.kind === "agent" && opts.shard !== undefined && claims.shard !== opts.shard) {
    throw new NstanceError(
      "invalid_argument",
      `registration nonce is for shard "${claims.shard}", this server serves "${opts.shard}"`,
    );
  }
  if (opts.kind === "operator" && claims.subject !== claims.clusterId) {
    throw new NstanceError(
      "invalid_argument",
      "operator registration nonce sub is not the cluster ID",
    );
  }
  return claims;
}
