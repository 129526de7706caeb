// SPDX-License-Identifier: Apache-2.0
/** What every admin command receives: the process's streams and environment, and its outcome. */

/** Somewhere text goes (process.stdout, or a buffer in tests). */
export interface TextWriter {
  write(chunk: string): unknown;
}

/** The outside world of one admin run; injected so tests run commands in-process. */
export interface AdminIo {
  /** Environment variables (`process.env`). */
  env: Readonly<Record<string, string | undefined>>;
  /** Command output: tables, JSON, the nonce. */
  stdout: TextWriter;
  /** Errors, hints and debug logs. */
  stderr: TextWriter;
  /** Reads all of standard input (for `--nonce-file -`); absent when there is none. */
  readStdin?: () => Promise<string>;
}

/** Shared by the program and its commands during one run. */
export interface CommandContext {
  io: AdminIo;
  /** Aborts the command (SIGINT). */
  signal: AbortSignal | undefined;
  /** Set by the command that ran; 0 unless it says otherwise. */
  exitCode: number;
  /** Full name of the command being run (`group scale`), for usage hints. */
  commandPath: string;
}
