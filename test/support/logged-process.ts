// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: runs one of the project's entry points (`node --import tsx src/bin/…`) as a child
 * process and collects its JSON log lines, for the server and agent process helpers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the child's default working directory). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A running process whose stdout is JSON log lines. */
export interface LoggedProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far (non-JSON lines are kept as `{raw}`). */
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  /** Resolves with the exit code (or signal name) once the process ends. */
  exited: Promise<number | string>;
  /** Waits for a log line matching `pred`; throws with the recent output on timeout. */
  waitLog(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` and waits for exit (SIGKILL after `graceMs`). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
  /** The last log lines and stderr, for assertion messages. */
  recent(): string;
}

/** Options for {@link spawnLoggedProcess}. */
export interface SpawnLoggedOptions {
  /** Entry file, relative to the repository root (e.g. `src/bin/nstance-agent.ts`). */
  entry: string;
  args?: string[];
  /** On top of the test's environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Names the process in timeout messages (`server`, `agent`). */
  label: string;
}

/** Spawns `node --import tsx <entry> <args>` and collects its log lines. */
export function spawnLoggedProcess(opts: SpawnLoggedOptions): LoggedProcess {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(REPO_ROOT, opts.entry), ...(opts.args ?? [])],
    {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, NODE_NO_WARNINGS: "1", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
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
    `\n--- recent ${opts.label} logs ---\n${logs
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
      throw new Error(`${opts.label} log line not seen within ${timeoutMs} ms${recent()}`);
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
