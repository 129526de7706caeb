// SPDX-License-Identifier: Apache-2.0
/**
 * Reading a client identity from a verified certificate, as every mTLS call does on a new
 * connection (cached per certificate after that): the DER walk of src/pki/client-identity.ts
 * against the general ASN.1 parse of `@peculiar/x509` it replaced, on the same agent
 * certificates, in one run. A new leader does this once per agent when a fleet reconnects.
 * Usage: npx tsx bench/client-identity.ts [certificates]   (default 2000)
 */
import { X509Certificate } from "node:crypto";
import { createCertificateAuthority, loadCertificateAuthority } from "../src/pki/ca.js";
import { parseClientIdentity } from "../src/pki/client-identity.js";
import { generateEd25519KeyPair } from "../src/pki/ed25519-keys.js";
import { issueClientCertificate } from "../src/pki/issue-certificate.js";
import { ROLE_EXTENSION_OID } from "../src/pki/role-extension.js";
import { x509 } from "../src/pki/x509.js";
import { machineLine, median, writeBenchSection } from "./bench-report.js";

const N = Number(process.argv[2] ?? 2000);
const ROUNDS = 5;

/** The former parse: @peculiar/x509 for CN, O, role extension, serial and notAfter. */
function peculiarParse(der: Uint8Array) {
  const c = new x509.X509Certificate(der);
  return {
    clientId: c.subjectName.getField("CN")[0],
    tenant: c.subjectName.getField("O")[0],
    role: c.extensions.find((e) => e.type === ROLE_EXTENSION_OID)?.value,
    serial: c.serialNumber.toLowerCase(),
    notAfter: c.notAfter,
  };
}

const ca = await loadCertificateAuthority(await createCertificateAuthority({ clusterId: "bench" }));
const keys = generateEd25519KeyPair();
const ders: Uint8Array[] = [];
for (let i = 0; i < N; i++) {
  const cert = await issueClientCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    clientId: `web${String(i).padStart(25, "0")}`,
    tenant: "default",
    role: "agent",
    ttlMs: 3_600_000,
  });
  ders.push(new Uint8Array(new X509Certificate(cert.certificatePem).raw));
}

function perCertUs(parse: (der: Uint8Array) => unknown): number {
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    for (const der of ders) parse(der);
    runs.push(((performance.now() - t0) * 1000) / ders.length);
  }
  return median(runs);
}

const before = perCertUs(peculiarParse);
const after = perCertUs(parseClientIdentity);
const body = [
  `\`npx tsx bench/client-identity.ts ${N}\` — reads CN, O, role extension, serial and notAfter from ${N} agent`,
  `certificates (Ed25519, issued by the cluster CA), median of ${ROUNDS} passes, per certificate:`,
  "",
  "| parser | µs per certificate | 10,000 agents reconnecting |",
  "|---|---|---|",
  `| @peculiar/x509 (before) | ${before.toFixed(1)} | ${((before * 10_000) / 1e6).toFixed(1)} s of CPU |`,
  `| DER walk (src/pki/der-reader.ts) | ${after.toFixed(1)} | ${((after * 10_000) / 1e6).toFixed(2)} s of CPU |`,
  "",
  `Speed-up ×${(before / after).toFixed(0)}. Machine: ${machineLine()}.`,
].join("\n");
process.stdout.write(`${body}\n`);
await writeBenchSection("Client identity parsing", body);
