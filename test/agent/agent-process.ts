// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the agent tests: prepares an agent's directories (ca.crt and nonce.jwt, as
 * userdata would) and runs the real `nstance-agent` entry point as a child process, collecting
 * its JSON log lines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FakeAgentServer } from "../support/fake-agent-server.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = fileURLToPath(new URL("../../src/bin/nstance-agent.ts", import.meta.url));

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
export interface AgentProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far (other lines kept as `{raw}`). */
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  /** Waits for a log line matching `pred`; throws with recent output on timeout. */
  waitLog(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` and waits for exit (SIGKILL after `graceMs`). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
  /** The last log lines and stderr, for assertion messages. */
  recent(): string;
}

/** Spawns `node --import tsx src/bin/nstance-agent.ts` with `env` on top of the test's env. */
export function startAgentProcess(opts: {
  env: Record<string, string>;
  args?: string[];
}): AgentProcess {
  const child = spawn(process.execPath, ["--import", "tsx", ENTRY, ...(opts.args ?? [])], {
    cwd: ROOT,
    env: { ...process.env, NODE_NO_WARNINGS: "1", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  let buf = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
      nl = buf.indexOf("\n");
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (c: string) => stderr.push(c));
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, sig) => resolve(code ?? sig ?? -1));
  });
  const recent = (): string =>
    `\n--- recent agent logs ---\n${logs
      .slice(-20)
      .map((l) => JSON.stringify(l))
      .join("\n")}\n--- stderr ---\n${stderr.join("").slice(-2000)}`;
  return {
    child,
    logs,
    stderr,
    exited,
    recent,
    async waitLog(pred, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const hit = logs.find(pred);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`agent log line not seen within ${timeoutMs} ms${recent()}`);
    },
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}
