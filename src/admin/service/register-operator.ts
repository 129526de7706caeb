// SPDX-License-Identifier: Apache-2.0
/**
 * Getting an operator certificate, two ways: exchange a nonce over the Registration API
 * (anonymous TLS that trusts only the cluster CA), or mint it straight from the CA key in storage
 * (the reference's direct mode, for when no server can register operators).
 */
import { createPublicKey, X509Certificate } from "node:crypto";
import { Metadata } from "@grpc/grpc-js";
import { identifierProblem } from "../../config/identifier.js";
import { type ClientIdentity, parseClientIdentity } from "../../pki/client-identity.js";
import { DEFAULT_CLUSTER_PREFIX } from "../../pki/cluster-identity.js";
import { generateEd25519KeyPair, spkiDer } from "../../pki/ed25519-keys.js";
import { issueClientCertificate } from "../../pki/issue-certificate.js";
import { grpcChannelCredentials } from "../../pki/tls-options.js";
import {
  type RegisterOperatorResponse,
  RegistrationServiceClient,
} from "../../protocol/gen/nstance/v1/registration.js";
import { errorMessage, NstanceError, PreconditionFailedError } from "../../shared/errors.js";
import { type ClusterStorage, caClusterId, loadClusterCa } from "./cluster-secrets.js";
import { callUnary } from "./grpc-call.js";
import { newOperatorId } from "./operator-id.js";
import type { OperatorIdentityPem } from "./operator-identity.js";
import { DEFAULT_OPERATOR_TENANT } from "./operator-nonce.js";
import { RemoteError } from "./remote-error.js";

/** Certificate lifetime in direct mode (the reference's 8760h). */
export const DEFAULT_DIRECT_OPERATOR_CERT_TTL_MS = 8_760 * 3_600_000;
/** Time allowed for the registration call when the caller sets none. */
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 30_000;
/** Operator records, relative to the cluster prefix: `operator/{tenant}.{client_id}.json`. */
export const OPERATOR_RECORD_DIR = "operator/";

/** A registered operator: its identity files and what its certificate says. */
export interface RegisteredOperator {
  identity: OperatorIdentityPem;
  /** Certificate CN. */
  clientId: string;
  tenant: string;
  /** Certificate serial, lowercase hex. */
  serial: string;
  expiresAt: Date;
}

/** Options for {@link registerOperatorWithNonce}. */
export interface RegisterWithNonceOptions {
  /** Registration API address, `host:port`; the host must be in the server certificate. */
  address: string;
  /** The cluster CA certificate: the only root trusted for this call. */
  caCertPem: string;
  /** Operator registration nonce JWT. */
  nonce: string;
  /** Defaults to {@link DEFAULT_REGISTRATION_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/**
 * Generates an Ed25519 key locally and exchanges the nonce for a certificate. The private key
 * never leaves this process. Server refusals come back as {@link RemoteError} (target
 * `registration`); a certificate that is not an operator certificate for our key, or not signed by
 * the CA, throws NstanceError `internal`.
 */
export async function registerOperatorWithNonce(
  opts: RegisterWithNonceOptions,
  signal?: AbortSignal,
): Promise<RegisteredOperator> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
  const keys = generateEd25519KeyPair();
  const client = new RegistrationServiceClient(
    opts.address,
    grpcChannelCredentials({ caCertPem: opts.caCertPem }),
  );
  let certPem: string;
  try {
    const res = await callUnary<RegisterOperatorResponse>(
      "RegisterOperator",
      (options, cb) =>
        client.registerOperator(
          {
            registrationNonceJwt: opts.nonce,
            publicKeyPem: Buffer.from(keys.publicKeyPem),
            privateIpv4: "",
            privateIpv6: "",
            hostname: "",
          },
          new Metadata(),
          options,
          cb,
        ),
      timeoutMs,
      signal,
    );
    certPem = res.clientCertificatePem.toString("utf8");
  } catch (err) {
    if (err instanceof NstanceError) {
      throw new RemoteError("registration", opts.address, err, timeoutMs);
    }
    throw err;
  } finally {
    client.close();
  }
  const issued = checkIssuedCertificate(certPem, keys.publicKeyPem, opts.caCertPem);
  return {
    identity: { caCertPem: opts.caCertPem, keyPem: keys.privateKeyPem, certPem },
    clientId: issued.clientId,
    tenant: issued.tenant,
    serial: issued.serial,
    expiresAt: issued.notAfter,
  };
}

/** Checks that a certificate from the server is an operator certificate for our key, from the CA. */
function checkIssuedCertificate(
  certPem: string,
  publicKeyPem: string,
  caCertPem: string,
): ClientIdentity {
  const fail = (message: string, cause?: unknown): NstanceError =>
    new NstanceError("internal", `the server returned an unusable certificate: ${message}`, {
      cause,
    });
  let cert: X509Certificate;
  let identity: ClientIdentity;
  try {
    cert = new X509Certificate(certPem);
    identity = parseClientIdentity(certPem);
  } catch (err) {
    throw fail(errorMessage(err), err);
  }
  if (identity.role !== "operator") throw fail(`role is "${identity.role}", not "operator"`);
  if (!spkiDer(cert.publicKey).equals(spkiDer(createPublicKey(publicKeyPem)))) {
    throw fail("it is for another public key");
  }
  if (!cert.verify(new X509Certificate(caCertPem).publicKey)) {
    throw fail("it is not signed by the cluster CA");
  }
  return identity;
}

/** Options for {@link registerOperatorDirect}. */
export interface RegisterDirectOptions extends ClusterStorage {
  /** Defaults to {@link DEFAULT_OPERATOR_TENANT}. */
  tenant?: string;
  /** Certificate lifetime. Defaults to {@link DEFAULT_DIRECT_OPERATOR_CERT_TTL_MS}. */
  ttlMs?: number;
  /** Certificate CN. Defaults to a new `opr…` ID. */
  operatorId?: string;
  /** When set, the bucket's CA must belong to this cluster. */
  clusterId?: string;
  /** Issue time. Defaults to now. */
  now?: Date;
}

/**
 * Mints an operator certificate from the CA key in storage and records the registration as
 * `cluster/operator/{tenant}.{client_id}.json` (create-only). Needs the secrets' encryption key
 * when they are encrypted.
 */
export async function registerOperatorDirect(
  opts: RegisterDirectOptions,
  signal?: AbortSignal,
): Promise<RegisteredOperator> {
  const tenant = opts.tenant ?? DEFAULT_OPERATOR_TENANT;
  const ttlMs = opts.ttlMs ?? DEFAULT_DIRECT_OPERATOR_CERT_TTL_MS;
  const operatorId = opts.operatorId ?? newOperatorId(opts.now);
  const tenantProblem = identifierProblem(tenant);
  if (tenantProblem) {
    throw new NstanceError("invalid_argument", `tenant "${tenant}" ${tenantProblem}`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(operatorId)) {
    throw new NstanceError(
      "invalid_argument",
      `operator ID "${operatorId}" must be 1-64 letters, digits, dots, underscores or hyphens`,
    );
  }
  if (!(ttlMs > 0)) throw new NstanceError("invalid_argument", "certificate TTL must be positive");
  const ca = await loadClusterCa(opts, signal);
  if (opts.clusterId !== undefined) {
    const caCluster = caClusterId(ca.certPem);
    if (caCluster !== opts.clusterId) {
      throw new NstanceError(
        "invalid_argument",
        `${opts.storage.description} holds cluster "${caCluster ?? "unknown"}", not "${opts.clusterId}"`,
      );
    }
  }
  const keys = generateEd25519KeyPair();
  const now = opts.now ?? new Date();
  const issued = await issueClientCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    clientId: operatorId,
    tenant,
    role: "operator",
    ttlMs,
    now,
  });
  const record = {
    client_id: operatorId,
    tenant,
    public_key_pem: keys.publicKeyPem,
    cert_serial: issued.serial,
    registered_at: now.toISOString(),
    expires_at: issued.expiresAt.toISOString(),
    registered_by: "nstance-admin",
  };
  const recordKey = `${opts.prefix ?? DEFAULT_CLUSTER_PREFIX}${OPERATOR_RECORD_DIR}${tenant}.${operatorId}.json`;
  try {
    await opts.storage.put(recordKey, `${JSON.stringify(record, null, 2)}\n`, {
      condition: { ifNoneMatch: "*" },
      contentType: "application/json",
      signal,
    });
  } catch (err) {
    if (err instanceof PreconditionFailedError) {
      throw new NstanceError(
        "already_exists",
        `operator ${operatorId} of tenant ${tenant} is already registered (${recordKey})`,
        { cause: err },
      );
    }
    throw err;
  }
  return {
    identity: { caCertPem: ca.certPem, keyPem: keys.privateKeyPem, certPem: issued.certificatePem },
    clientId: operatorId,
    tenant,
    serial: issued.serial,
    expiresAt: issued.expiresAt,
  };
}
