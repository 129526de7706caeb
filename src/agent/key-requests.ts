// SPDX-License-Identifier: Apache-2.0
/**
 * Key generation requests: a ReceiveKeyRequests server stream. For each request the agent
 * creates (or reuses) the named key pairs in its keys directory and submits only the public
 * halves with SubmitPublicKeys; private keys never leave the machine. The stream is reopened with
 * backoff whenever it ends.
 */
import { Metadata } from "@grpc/grpc-js";
import type {
  KeyGenerationRequest,
  PublicKeySubmission,
} from "../protocol/gen/nstance/v1/agent.js";
import { fromGrpcError } from "../protocol/to-grpc-error.js";
import { type BackoffOptions, backoffDelayMs } from "../shared/backoff.js";
import { errorMessage, IllegalStateError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { StreamChannel } from "./agent-channel.js";
import type { KeyStore } from "./key-store.js";
import { DEFAULT_STREAM_BACKOFF, startReconnectLoop } from "./reconnect-loop.js";
import { readServerStream } from "./server-stream.js";

/** Deadline of one SubmitPublicKeys call. */
export const DEFAULT_SUBMIT_TIMEOUT_MS = 30_000;

/** The file name a public key is submitted under: the key name plus `.pub`. */
export function publicKeyFilename(keyName: string): string {
  return `${keyName}.pub`;
}

/** Options for {@link KeyRequestStream}. */
export interface KeyRequestStreamOptions {
  channel: StreamChannel;
  /** Sent as `instance_id`; must be the certificate's CN. */
  instanceId: string;
  keyStore: Pick<KeyStore, "ensureKey">;
  logger: Logger;
  /** Backoff of stream reconnects and submission retries; defaults to 5 s … 60 s. */
  backoff?: BackoffOptions;
  /** Defaults to {@link DEFAULT_SUBMIT_TIMEOUT_MS}. */
  submitTimeoutMs?: number;
}

/** Lifecycle of a {@link KeyRequestStream}. */
export type KeyRequestStreamState = "idle" | "running" | "stopped";

/** Serves key generation requests; see the file comment. */
export class KeyRequestStream {
  readonly #opts: KeyRequestStreamOptions;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  #state: KeyRequestStreamState = "idle";
  #loop: Promise<void> | undefined;
  #submitted = 0;

  constructor(opts: KeyRequestStreamOptions) {
    if (!opts.channel) throw new TypeError("channel is required");
    if (!opts.instanceId) throw new TypeError("instanceId is required");
    if (!opts.keyStore) throw new TypeError("keyStore is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#opts = opts;
    this.#logger = opts.logger;
  }

  /** Current lifecycle state. */
  get state(): KeyRequestStreamState {
    return this.#state;
  }

  /** Number of public keys submitted successfully. */
  get submitted(): number {
    return this.#submitted;
  }

  /** Opens the stream in the background. */
  start(): void {
    if (this.#state !== "idle") throw new IllegalStateError(`key request stream is ${this.#state}`);
    this.#state = "running";
    this.#loop = startReconnectLoop(
      {
        name: "key_requests",
        connect: (signal) => this.#stream(signal),
        logger: this.#logger,
        channel: this.#opts.channel,
        backoff: this.#opts.backoff,
      },
      this.#abort.signal,
    );
  }

  /** Cancels the stream and any submission in progress; idempotent. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    this.#abort.abort();
    await this.#loop;
  }

  #stream(signal: AbortSignal): Promise<void> {
    return readServerStream(
      this.#opts.channel,
      (c) => c.receiveKeyRequests({}),
      (req: KeyGenerationRequest) => this.#handle(req, signal),
      signal,
    );
  }

  async #handle(req: KeyGenerationRequest, signal: AbortSignal): Promise<void> {
    const names = [...new Set(req.keyNames)];
    this.#logger.info("Key generation requested", { keys: names });
    const keys: PublicKeySubmission[] = [];
    for (const name of names) {
      try {
        const key = await this.#opts.keyStore.ensureKey(name);
        keys.push({
          filename: publicKeyFilename(name),
          publicKeyPem: Buffer.from(key.publicKeyPem),
        });
      } catch (err) {
        // One bad name (e.g. a path) must not block the others; the server logs what is missing.
        this.#logger.error("Cannot generate requested key", {
          key_name: name,
          err: errorMessage(err),
        });
      }
    }
    if (keys.length === 0) return;
    await this.#submit(keys, signal);
  }

  /** Submits until the server accepts or the agent stops; the keys on disk make retries idempotent. */
  async #submit(keys: PublicKeySubmission[], signal: AbortSignal): Promise<void> {
    const backoff = this.#opts.backoff ?? DEFAULT_STREAM_BACKOFF;
    for (let attempt = 0; ; attempt++) {
      const client = this.#opts.channel.client;
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void => call.cancel();
          const call = client.submitPublicKeys(
            { instanceId: this.#opts.instanceId, keys },
            new Metadata(),
            { deadline: Date.now() + (this.#opts.submitTimeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS) },
            (err) => {
              signal.removeEventListener("abort", onAbort);
              if (err) reject(err);
              else resolve();
            },
          );
          signal.addEventListener("abort", onAbort, { once: true });
        });
        this.#submitted += keys.length;
        this.#logger.info("Submitted public keys", { keys: keys.map((k) => k.filename) });
        return;
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        this.#opts.channel.reportFailure(client, err);
        const waitMs = backoffDelayMs(attempt, backoff);
        this.#logger.warn("Cannot submit public keys; retrying", {
          keys: keys.map((k) => k.filename),
          err: fromGrpcError(err).message,
          retry_in_ms: waitMs,
        });
        await sleep(waitMs, signal);
      }
    }
  }
}
