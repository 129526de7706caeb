// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: runs a real `nstance-server` process, collects its JSON log lines, and polls its
 * health endpoint. Used by the multi-process tests and benchmarks.
 */
import { createServer } from "node:net";
import { type LoggedProcess, spawnLoggedProcess } from "./logged-process.js";

/** The cluster encryption key test servers use unless a test gives another (base64 of 32 bytes). */
export const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 7).toString("base64");

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768–60999): a port the kernel hands out for port 0 can be
  // taken by any outgoing connection (agents, storage clients) before the server binds it, and a
  // restarted server would race for its port the same way. These ports are never picked for that.
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FIXED_PORT_LOW + Math.floor(Math.random() * (FIXED_PORT_HIGH - FIXED_PORT_LOW));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  return kernelPort();
}

const FIXED_PORT_LOW = 20_000;
const FIXED_PORT_HIGH = 32_000;
/** Ports this test process has handed out (never twice). */
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A running server process. */
export interface ServerProcess extends LoggedProcess {
  healthUrl: string;
  /** GET /health → status code, or 0 when nothing answers. */
  health(): Promise<{ status: number; body: Record<string, unknown> | undefined }>;
  /** Polls until `pred(status, body)` holds or the timeout passes (throws, with the recent logs). */
  waitHealth(
    pred: (status: number, body: Record<string, unknown> | undefined) => boolean,
    timeoutMs?: number,
  ): Promise<void>;
}

/** Options for {@link startServerProcess}. */
export interface StartServerOptions {
  args: string[];
  env?: Record<string, string>;
  healthPort: number;
  cwd?: string;
}

/** Spawns `nstance-server` with the given args (health bound to 127.0.0.1:healthPort). */
export function startServerProcess(opts: StartServerOptions): ServerProcess {
  const proc = spawnLoggedProcess({
    entry: "src/bin/nstance-server.ts",
    args: [...opts.args, "--bind-health", `127.0.0.1:${opts.healthPort}`],
    env: { NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY, ...opts.env },
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    label: "server",
  });
  const healthUrl = `http://127.0.0.1:${opts.healthPort}/health`;

  const health = async (): Promise<{
    status: number;
    body: Record<string, unknown> | undefined;
  }> => {
    try {
      const r = await fetch(healthUrl, { signal: AbortSignal.timeout(2000) });
      const text = await r.text();
      let body: Record<string, unknown> | undefined;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
      return { status: r.status, body };
    } catch {
      return { status: 0, body: undefined };
    }
  };
  return {
    ...proc,
    healthUrl,
    health,
    async waitHealth(pred, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      let last = { status: 0, body: undefined as Record<string, unknown> | undefined };
      while (Date.now() < deadline) {
        last = await health();
        if (pred(last.status, last.body)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `health condition not met within ${timeoutMs} ms; last ${last.status} ${JSON.stringify(last.body)}${proc.recent()}`,
      );
    },
  };
}
