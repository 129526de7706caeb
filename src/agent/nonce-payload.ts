// SPDX-License-Identifier: Apache-2.0
/**
 * Reads the claims of the registration nonce JWT without verifying it. The agent has no key to
 * verify with (the server does that); it only needs the instance ID, the expiry (to refuse a
 * nonce that cannot work) and the runtime config hash to record after registration.
 */
import { NstanceError } from "../shared/errors.js";

/** The nonce claims the agent uses. */
export interface NoncePayload {
  /** `sub`: the instance ID. */
  subject: string;
  /** `exp`; undefined when the nonce has none. */
  expiresAt: Date | undefined;
  /** `config_hash`: the group's runtime config hash when the instance was created; may be empty. */
  configHash: string;
}

/** Decodes the payload of a JWT (`header.payload.signature`); throws `invalid_argument` when malformed. */
export function decodeNoncePayload(jwt: string): NoncePayload {
  const parts = jwt.trim().split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) {
    throw new NstanceError("invalid_argument", "registration nonce is not a JWT");
  }
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    throw new NstanceError("invalid_argument", "registration nonce payload is not JSON");
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    throw new NstanceError("invalid_argument", "registration nonce payload is not an object");
  }
  const p = payload as Record<string, unknown>;
  const sub = p.sub ?? "";
  const configHash = p.config_hash ?? "";
  if (typeof sub !== "string" || typeof configHash !== "string") {
    throw new NstanceError(
      "invalid_argument",
      "registration nonce claims sub/config_hash are not strings",
    );
  }
  if (/[\r\n]/.test(configHash)) {
    throw new NstanceError(
      "invalid_argument",
      "registration nonce claim config_hash is not one line",
    );
  }
  let expiresAt: Date | undefined;
  if (p.exp !== undefined) {
    if (typeof p.exp !== "number" || !Number.isFinite(p.exp)) {
      throw new NstanceError("invalid_argument", "registration nonce claim exp is not a number");
    }
    expiresAt = new Date(p.exp * 1000);
  }
  return { subject: sub, expiresAt, configHash };
}

/** True when the nonce's `exp` is at or before `nowMs`. */
export function isNonceExpired(payload: NoncePayload, nowMs: number): boolean {
  return payload.expiresAt !== undefined && payload.expiresAt.getTime() <= nowMs;
}
