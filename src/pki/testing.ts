// SPDX-License-Identifier: Apache-2.0
/** Test helpers: a throwaway CA with server and client certificates. Not for production code. */
import {
  type CertificateAuthority,
  createCertificateAuthority,
  loadCertificateAuthority,
} from "./ca.js";
import { generateEd25519KeyPair } from "./ed25519-keys.js";
import { issueClientCertificate, issueServerCertificate } from "./issue-certificate.js";
import type { ClientRole } from "./role-extension.js";

/** A certificate with its private key, as PEM. */
export interface TestCertificate {
  certPem: string;
  keyPem: string;
}

/** A CA and one server certificate (SANs: localhost, loopback IPs, nstance-server). */
export interface TestPki {
  ca: CertificateAuthority;
  caCertPem: string;
  server: TestCertificate;
}

/** Creates a CA and a server certificate for `localhost`. */
export async function createTestPki(clusterId = "test-cluster"): Promise<TestPki> {
  const ca = await loadCertificateAuthority(await createCertificateAuthority({ clusterId }));
  const keys = generateEd25519KeyPair();
  const issued = await issueServerCertificate({ ca, publicKeyPem: keys.publicKeyPem });
  return {
    ca,
    caCertPem: ca.certPem,
    server: { certPem: issued.certificatePem, keyPem: keys.privateKeyPem },
  };
}

/** Issues a client certificate (with a fresh key) from a test CA. */
export async function issueTestClientCertificate(
  ca: CertificateAuthority,
  client: { clientId: string; tenant?: string; role: ClientRole },
): Promise<TestCertificate> {
  const keys = generateEd25519KeyPair();
  const issued = await issueClientCertificate({
    ca,
    publicKeyPem: keys.publicKeyPem,
    clientId: client.clientId,
    tenant: client.tenant ?? "default",
    role: client.role,
  });
  return { certPem: issued.certificatePem, keyPem: keys.privateKeyPem };
}
