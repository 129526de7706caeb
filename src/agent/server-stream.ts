// SPDX-License-Identifier: Apache-2.0
/**
 * Reads one server-streaming call of the Agent service (ReceiveFiles, ReceiveKeyRequests) on the
 * channel's current client: each message is handled in order before the next is read, an abort
 * cancels the call, and a failure is reported to the channel (so it can move to another server)
 * before it reaches the reconnect loop.
 */
import type { ClientReadableStream } from "@grpc/grpc-js";
import type { AgentServiceClient } from "../protocol/gen/nstance/v1/agent.js";
import type { StreamChannel } from "./agent-channel.js";

/**
 * Opens the call with `open` and hands each message to `onMessage` (awaited). Resolves when the
 * server ends the stream or `signal` aborts; rejects with the call's (or the handler's) error.
 */
export async function readServerStream<T>(
  channel: StreamChannel,
  open: (client: AgentServiceClient) => ClientReadableStream<T>,
  onMessage: (msg: T) => Promise<void> | void,
  signal: AbortSignal,
): Promise<void> {
  const client = channel.client;
  const call = open(client);
  const watch = channel.watchCall?.(client);
  const onAbort = (): void => call.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const msg of call as AsyncIterable<T>) {
      watch?.received();
      await onMessage(msg);
    }
  } catch (err) {
    if (signal.aborted) return;
    channel.reportFailure(client, err);
    throw err;
  } finally {
    watch?.end();
    signal.removeEventListener("abort", onAbort);
    call.cancel();
  }
}
