// SPDX-License-Identifier: Apache-2.0
/**
 * What the `local` provider knows about an agent process, read from `/proc` (Linux). A PID alone
 * is not an identity: after the agent dies the kernel may hand the number to another process, so a
 * live PID counts as the instance only when its start time and environment match.
 */
import { readFile } from "node:fs/promises";

/** The process's state as a VM status source. */
export type ProcessState =
  /** Alive: running, sleeping or in uninterruptible I/O. */
  | "running"
  /** Stopped by a signal (SIGSTOP) or a tracer: alive but silent, like a hung VM. */
  | "stopped"
  /** Exited but not yet reaped by its parent. */
  | "zombie"
  /** No such process, or the PID now belongs to another process. */
  | "gone";

/** How to recognise the instance's process. */
export interface ProcessIdentity {
  pid: number;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22), when recorded. */
  startTicks?: number;
  /** A `NAME=value` entry the process's initial environment must contain. */
  envMarker?: string;
}

interface StatFields {
  state: string;
  startTicks: number;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses. */
export function parseProcStat(text: string): StatFields | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  const state = fields[0];
  const startTicks = Number(fields[19]);
  if (!state || !Number.isFinite(startTicks)) return undefined;
  return { state, startTicks };
}

async function readStat(pid: number): Promise<StatFields | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

/** The process's start time in clock ticks since boot, or undefined when it cannot be read. */
export async function readStartTicks(pid: number): Promise<number | undefined> {
  return (await readStat(pid))?.startTicks;
}

function signalZero(pid: number): "alive" | "gone" {
  try {
    process.kill(pid, 0);
    return "alive";
  } catch (err) {
    // EPERM: the PID belongs to another user's process, so certainly not our agent.
    return (err as NodeJS.ErrnoException).code === "ESRCH" ||
      (err as NodeJS.ErrnoException).code === "EPERM"
      ? "gone"
      : "alive";
  }
}

let procAvailable: boolean | undefined;

async function hasProc(): Promise<boolean> {
  if (procAvailable === undefined) {
    procAvailable = (await readStat(process.pid)) !== undefined;
  }
  return procAvailable;
}

/** Finds out whether the identified process still runs, and how. */
export async function probeProcess(id: ProcessIdentity): Promise<ProcessState> {
  if (!Number.isSafeInteger(id.pid) || id.pid <= 1) return "gone";
  if (signalZero(id.pid) === "gone") return "gone";
  // Without /proc (not Linux) the signal check is all there is.
  if (!(await hasProc())) return "running";
  const stat = await readStat(id.pid);
  if (!stat) return "gone";
  if (id.startTicks !== undefined && stat.startTicks !== id.startTicks) return "gone";
  if (stat.state === "Z") return "zombie";
  if (stat.state === "X" || stat.state === "x") return "gone";
  if (id.envMarker !== undefined && !(await environContains(id.pid, id.envMarker))) {
    return "gone";
  }
  return stat.state === "T" || stat.state === "t" ? "stopped" : "running";
}

async function environContains(pid: number, entry: string): Promise<boolean> {
  let environ: Buffer;
  try {
    environ = await readFile(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const needle = Buffer.from(`${entry}\0`);
  const at = environ.indexOf(needle);
  return at === 0 || (at > 0 && environ[at - 1] === 0);
}
