// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the agent tests: prepares an agent's directories (ca.crt and nonce.jwt, as
 * userdata would) and runs the real `nstance-agent` entry point as a child process, collecting
 * its JSON log lines.
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FakeAgentServer } from "../support/fake-agent-server.js";
import { type LoggedProcess, spawnLoggedProcess } from "../support/logged-process.js";

/** Crockford base32 alphabet used by instance IDs. */
const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/** A random, well-formed instance ID (`tst` + 26 base32 characters). */
export function randomInstanceId(): string {
  let s = "tst";
  for (let i = 0; i < 26; i++) s += CROCKFORD[Math.floor(Math.random() * 32)];
  return s;
}

/** An agent's directories and the environment pointing at them. */
export interface AgentDirs {
  root: string;
  identityDir: string;
  keysDir: string;
  recvDir: string;
  /** NSTANCE_* variables for the directories and the server addresses. */
  env: Record<string, string>;
}

/**
 * Creates the directories under a fresh temp root and writes `ca.crt` and `nonce.jwt` (unless
 * `nonce` is null) as the instance's userdata would.
 */
export async function prepareAgentDirs(
  server: FakeAgentServer,
  opts: { nonce: string | null; registrationAddr?: string; agentAddr?: string },
): Promise<AgentDirs> {
  const root = await mkdtemp(join(tmpdir(), "nstance-agent-test-"));
  const identityDir = join(root, "identity");
  const keysDir = join(root, "keys");
  const recvDir = join(root, "recv");
  await mkdir(identityDir, { mode: 0o700 });
  await writeFile(join(identityDir, "ca.crt"), server.pki.caCertPem, { mode: 0o600 });
  if (opts.nonce !== null) {
    await writeFile(join(identityDir, "nonce.jwt"), `${opts.nonce}\n`, { mode: 0o600 });
  }
  return {
    root,
    identityDir,
    keysDir,
    recvDir,
    env: {
      NSTANCE_IDENTITY_DIR: identityDir,
      NSTANCE_KEYS_DIR: keysDir,
      NSTANCE_RECV_DIR: recvDir,
      NSTANCE_SERVER_REGISTRATION_ADDR: opts.registrationAddr ?? server.registrationAddr,
      NSTANCE_SERVER_AGENT_ADDR: opts.agentAddr ?? server.agentAddr,
      NSTANCE_METRICS_INTERVAL: "1s",
      NSTANCE_PROVIDER: "none",
      NSTANCE_INSTANCE_IPV4: "10.1.2.3",
      NSTANCE_INSTANCE_HOSTNAME: "agent-test-host",
    },
  };
}

/** A running agent process. */
export type AgentProcess = LoggedProcess;

/** Spawns `node --import tsx src/bin/nstance-agent.ts` with `env` on top of the test's env. */
export function startAgentProcess(opts: {
  env: Record<string, string>;
  args?: string[];
}): AgentProcess {
  return spawnLoggedProcess({
    entry: "src/bin/nstance-agent.ts",
    env: opts.env,
    ...(opts.args ? { args: opts.args } : {}),
    label: "agent",
  });
}
