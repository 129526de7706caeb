// SPDX-License-Identifier: Apache-2.0
/**
 * RenewAgentCertificate: an agent trades its current client certificate for a new one before it
 * expires, so no instance loses its identity at `certificates.agent.ttl` (default 24 h). Differs
 * from Go, where agents have no renewal path (reference §9).
 *
 * The new certificate certifies the public key the instance registered (`instance_pub`), with the
 * same CN (instance ID), tenant and role; the mutual-TLS handshake already proved that the caller
 * holds that key. Only the instance's current certificate may renew. A caller still presenting the
 * certificate the current one replaced lost the answer of its last renewal (connection cut, agent
 * restarted, leader failover): it gets the current certificate again, and nothing new is issued.
 * Any other certificate is superseded and refused with PERMISSION_DENIED.
 *
 * Persisted like registration: the instance record in storage first (the source a new leader
 * rebuilds from), then the SQLite row, then the `certificate_renewed` decision and a certlog entry.
 */
import { X509Certificate } from "node:crypto";
import { recordDecision } from "../../db/decisions-table.js";
import {
  getInstance,
  type InstanceRow,
  isActiveInstance,
  renewInstanceCertSerial,
} from "../../db/instances-table.js";
import type { ClientIdentity } from "../../pki/client-identity.js";
import { issueClientCertificate } from "../../pki/issue-certificate.js";
import type { RenewAgentCertificateResponse } from "../../protocol/gen/nstance/v1/agent.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { ApiContext } from "../api/api-context.js";
import { clientCertTtlMs } from "../api/client-cert-ttl.js";
import { instanceRecordFromRow, instanceRecordKey } from "../api/registration/instance-record.js";
import { requireLeader } from "../api/require-leader.js";
import { type JsonRecord, updateJsonObject } from "../api/update-json-object.js";
import { callerInstance } from "./caller-instance.js";
import { writeCertlog } from "./certlog.js";

/** The certlog's name for an agent's identity certificate (the `certificates.agent` template). */
const AGENT_CERTIFICATE_NAME = "agent";
/** The file the agent keeps its identity certificate in. */
const AGENT_CERTIFICATE_FILENAME = "identity.crt";

/** State shared by the RenewAgentCertificate calls of one server. */
export interface RenewAgentCertificateState {
  /** Instances whose renewal is under way: a second concurrent call is refused (ABORTED). */
  inFlight: Set<string>;
}

/**
 * Serials compare as numbers: a DER INTEGER drops leading zero bytes, so the serial read from a
 * presented certificate may be shorter than the one recorded at issue.
 */
function sameSerial(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a === "" || b === "") return false;
  const norm = (s: string) => s.toLowerCase().replace(/^(00)+(?=.)/, "");
  return norm(a) === norm(b);
}

/** Renews the caller's certificate; see the file comment. */
export async function renewAgentCertificate(
  ctx: ApiContext,
  state: RenewAgentCertificateState,
  caller: ClientIdentity,
  signal?: AbortSignal,
): Promise<RenewAgentCertificateResponse> {
  requireLeader(ctx.leadership);
  const ref = callerInstance(ctx.db, caller);
  const row = getInstance(ctx.db, ref.id);
  if (!row || !isActiveInstance(row)) {
    throw new NstanceError("not_found", `instance ${ref.id} is deleted or being deleted`);
  }
  if (row.registeredAt === undefined || !row.instancePub || !row.certSerial) {
    throw new NstanceError(
      "permission_denied",
      `instance ${ref.id} has no registered identity key to renew a certificate for`,
    );
  }
  if (state.inFlight.has(row.id)) {
    throw new NstanceError(
      "aborted",
      `a certificate renewal of instance ${row.id} is already running; retry`,
    );
  }
  state.inFlight.add(row.id);
  try {
    const key = instanceRecordKey(ctx.prefix, row.tenant, row.id);
    if (sameSerial(caller.serial, row.certSerial)) {
      return await issueRenewal(ctx, row, row.certSerial, key, signal);
    }
    // The cache may lag the record by one renewal (a crash between the two writes): the record
    // decides whether the caller's certificate is the current one or the one it replaced.
    const record = await readRecord(ctx, key, signal);
    const recordSerial = str(record?.cert_serial);
    if (recordSerial !== undefined && sameSerial(caller.serial, recordSerial)) {
      return await issueRenewal(ctx, row, recordSerial, key, signal);
    }
    if (sameSerial(caller.serial, str(record?.previous_cert_serial))) {
      const resent = currentCertificate(record!, row, (ctx.now ?? Date.now)());
      if (resent) {
        ctx.logger.info("Agent certificate re-sent to the holder of the one it replaced", {
          instance_id: row.id,
          serial: resent.serial,
          presented_serial: caller.serial,
          expires_at: resent.expiresAt.toISOString(),
        });
        return {
          clientCertificatePem: Buffer.from(resent.certificatePem),
          expiresAt: resent.expiresAt,
        };
      }
    }
    throw new NstanceError(
      "permission_denied",
      `client certificate ${caller.serial} of instance ${row.id} has been superseded; only the current certificate may renew`,
    );
  } finally {
    state.inFlight.delete(row.id);
  }
}

/**
 * Issues, records and returns the new certificate. `previousSerial` is the serial it replaces (the
 * caller's, as recorded); the SQLite row changes only while it still holds `row.certSerial`.
 */
async function issueRenewal(
  ctx: ApiContext,
  row: InstanceRow,
  previousSerial: string,
  key: string,
  signal: AbortSignal | undefined,
): Promise<RenewAgentCertificateResponse> {
  const now = new Date((ctx.now ?? Date.now)());
  const cert = await issueClientCertificate({
    ca: ctx.identity.ca,
    publicKeyPem: row.instancePub!,
    clientId: row.id,
    tenant: row.tenant,
    role: "agent",
    ttlMs: clientCertTtlMs(ctx.configStore.current().config, "agent"),
    now,
  });
  const at = now.toISOString();
  const expiresAt = cert.expiresAt.toISOString();
  await updateJsonObject(
    ctx.storage,
    key,
    (current) => ({
      // No record (it should exist since registration): rebuild one from the row.
      ...(current ?? {
        ...instanceRecordFromRow(row),
        registered_at: new Date(row.registeredAt!).toISOString(),
        public_key_pem: row.instancePub,
      }),
      cert_serial: cert.serial,
      cert_expires_at: expiresAt,
      cert_renewed_at: at,
      // Lets the holder of the replaced certificate fetch this one if the answer gets lost.
      previous_cert_serial: previousSerial,
      cert_pem: cert.certificatePem,
      last_updated: at,
    }),
    { signal },
  );
  const renewed = renewInstanceCertSerial(ctx.db, {
    id: row.id,
    previousSerial: row.certSerial!,
    certSerial: cert.serial,
    renewedAt: now.getTime(),
  });
  if (!renewed) {
    const again = getInstance(ctx.db, row.id);
    throw again && isActiveInstance(again)
      ? new NstanceError("aborted", `instance ${row.id} changed during the renewal; retry`)
      : new NstanceError("not_found", `instance ${row.id} was deleted during the renewal`);
  }
  recordDecision(ctx.db, {
    instanceId: row.id,
    decision: "certificate_renewed",
    reason: "client_certificate",
    evidence: {
      cert_serial: cert.serial,
      cert_expires_at: expiresAt,
      previous_serial: previousSerial,
    },
    at: now.getTime(),
  });
  try {
    await writeCertlog(
      ctx.storage,
      ctx.prefix,
      {
        instanceId: row.id,
        tenant: row.tenant,
        issuedAt: now,
        certificates: [
          {
            certificateName: AGENT_CERTIFICATE_NAME,
            filename: AGENT_CERTIFICATE_FILENAME,
            serial: cert.serial,
            expiresAt: cert.expiresAt,
          },
        ],
      },
      signal,
    );
  } catch (err) {
    // The certificate is issued and recorded in the instance record; only the audit entry is lost.
    ctx.logger.error("Cannot write the certificate log", {
      instance_id: row.id,
      err: errorMessage(err),
    });
  }
  ctx.logger.info("Agent certificate renewed", {
    instance_id: row.id,
    serial: cert.serial,
    previous_serial: previousSerial,
    expires_at: expiresAt,
  });
  return { clientCertificatePem: Buffer.from(cert.certificatePem), expiresAt: cert.expiresAt };
}

async function readRecord(
  ctx: ApiContext,
  key: string,
  signal: AbortSignal | undefined,
): Promise<JsonRecord | undefined> {
  const obj = await ctx.storage.get(key, signal);
  if (!obj) return undefined;
  try {
    return JSON.parse(obj.body.toString("utf8")) as JsonRecord;
  } catch (err) {
    throw new NstanceError("internal", `${key} is not valid JSON`, { cause: err });
  }
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/**
 * The record's current certificate (`cert_pem`) when it is still valid, carries the record's
 * serial and certifies the instance's key; undefined otherwise (then nothing is re-sent).
 */
function currentCertificate(
  record: JsonRecord,
  row: InstanceRow,
  nowMs: number,
): { certificatePem: string; serial: string; expiresAt: Date } | undefined {
  const pem = str(record.cert_pem);
  const serial = str(record.cert_serial);
  if (pem === undefined || serial === undefined) return undefined;
  try {
    const cert = new X509Certificate(pem);
    const spki = (k: X509Certificate["publicKey"]) =>
      k.export({ type: "spki", format: "pem" }).toString();
    if (!sameSerial(cert.serialNumber, serial)) return undefined;
    if (Date.parse(cert.validTo) <= nowMs) return undefined;
    if (spki(cert.publicKey) !== row.instancePub) return undefined;
    return { certificatePem: pem, serial, expiresAt: new Date(cert.validTo) };
  } catch {
    // An unreadable stored certificate is not re-sent; the caller is refused as superseded.
    return undefined;
  }
}
