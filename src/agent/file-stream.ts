// SPDX-License-Identifier: Apache-2.0
/**
 * File patches: a ReceiveFiles server stream. FileTransfer messages are buffered until the
 * commit message (empty filename, non-empty config_hash), then the whole patch is handed to the
 * FileReceiver, which applies it all or nothing. A rejected patch's reason is kept for the next
 * health report's `patch_error` (the receiver also records each bad file's error, which the
 * `files` map reports). A patch cut off by a broken stream is dropped; the server resends it
 * because config_hash did not move. The stream is reopened with backoff whenever it ends.
 */
import type { FileTransfer } from "../protocol/gen/nstance/v1/agent.js";
import type { BackoffOptions } from "../shared/backoff.js";
import { errorMessage, IllegalStateError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type { StreamChannel } from "./agent-channel.js";
import type { FileReceiver, PatchFile } from "./file-receiver.js";
import { startReconnectLoop } from "./reconnect-loop.js";
import { readServerStream } from "./server-stream.js";

/** Largest patch (sum of file contents) the agent buffers; a bigger one is rejected. */
export const DEFAULT_MAX_PATCH_BYTES = 64 * 1024 * 1024;

/** Options for {@link FileStream}. */
export interface FileStreamOptions {
  channel: StreamChannel;
  receiver: Pick<FileReceiver, "apply">;
  logger: Logger;
  /** Called after every patch outcome (applied or rejected), e.g. to report early. */
  onPatch?: () => void;
  /** Defaults to {@link DEFAULT_MAX_PATCH_BYTES}. */
  maxPatchBytes?: number;
  /** Reconnection backoff; defaults to the reconnect loop's (5 s … 60 s). */
  backoff?: BackoffOptions;
}

/** Lifecycle of a {@link FileStream}. */
export type FileStreamState = "idle" | "running" | "stopped";

/** Receives and applies file patches; see the file comment. */
export class FileStream {
  readonly #opts: FileStreamOptions;
  readonly #logger: Logger;
  readonly #maxPatchBytes: number;
  readonly #abort = new AbortController();
  #state: FileStreamState = "idle";
  #loop: Promise<void> | undefined;
  #patchError: string | undefined;
  #patchesApplied = 0;

  constructor(opts: FileStreamOptions) {
    if (!opts.channel) throw new TypeError("channel is required");
    if (!opts.receiver) throw new TypeError("receiver is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#maxPatchBytes = opts.maxPatchBytes ?? DEFAULT_MAX_PATCH_BYTES;
  }

  /** Current lifecycle state. */
  get state(): FileStreamState {
    return this.#state;
  }

  /** Why the last patch was not applied; undefined when it was (or none came yet). */
  get patchError(): string | undefined {
    return this.#patchError;
  }

  /** Patches applied since start. */
  get patchesApplied(): number {
    return this.#patchesApplied;
  }

  /** Opens the stream in the background. */
  start(): void {
    if (this.#state !== "idle") throw new IllegalStateError(`file stream is ${this.#state}`);
    this.#state = "running";
    this.#loop = startReconnectLoop(
      {
        name: "files",
        connect: (signal) => this.#stream(signal),
        logger: this.#logger,
        channel: this.#opts.channel,
        backoff: this.#opts.backoff,
      },
      this.#abort.signal,
    );
  }

  /** Cancels the stream; a patch being written completes or is rolled back by the receiver. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    this.#abort.abort();
    await this.#loop;
  }

  async #stream(signal: AbortSignal): Promise<void> {
    let files: PatchFile[] = [];
    let bytes = 0;
    let oversized = false;
    const onMessage = async (msg: FileTransfer): Promise<void> => {
      if (msg.filename !== "") {
        bytes += msg.content.length;
        if (bytes > this.#maxPatchBytes) {
          // Keep reading to the commit message, but stop holding the contents.
          oversized = true;
          files = [];
        } else if (!oversized) {
          files.push({
            filename: msg.filename,
            content: msg.content,
            lastModified: msg.lastModified,
          });
        }
        return;
      }
      const patch = { files, configHash: msg.configHash, oversized, bytes };
      files = [];
      bytes = 0;
      oversized = false;
      await this.#commit(patch, signal);
    };
    try {
      await readServerStream(this.#opts.channel, (c) => c.receiveFiles({}), onMessage, signal);
    } finally {
      if (files.length > 0) {
        this.#logger.warn("Dropped an incomplete file patch (stream ended before its commit)", {
          files: files.map((f) => f.filename),
        });
      }
    }
  }

  async #commit(
    patch: { files: PatchFile[]; configHash: string; oversized: boolean; bytes: number },
    signal: AbortSignal,
  ): Promise<void> {
    if (patch.configHash === "") {
      this.#reject(
        "patch rejected: commit message has no config hash",
        patch.files.map((f) => f.filename),
      );
      return;
    }
    if (patch.oversized) {
      this.#reject(
        `patch rejected: ${patch.bytes} bytes exceeds the agent's limit of ${this.#maxPatchBytes}`,
        [],
      );
      return;
    }
    try {
      const result = await this.#opts.receiver.apply(
        { files: patch.files, configHash: patch.configHash },
        signal,
      );
      if (result.applied) {
        this.#patchError = undefined;
        this.#patchesApplied++;
      } else {
        // The receiver logged the rejection and wrote recv/errors/<name> for each bad file.
        this.#patchError = result.reason;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      this.#patchError = `patch failed: ${errorMessage(err)}`;
      this.#logger.error("Cannot apply file patch", {
        files: patch.files.map((f) => f.filename),
        config_hash: patch.configHash,
        err: errorMessage(err),
      });
    }
    this.#opts.onPatch?.();
  }

  #reject(reason: string, files: string[]): void {
    this.#patchError = reason;
    this.#logger.warn("Rejected file patch", { files, reason });
    this.#opts.onPatch?.();
  }
}
