// SPDX-License-Identifier: Apache-2.0
/**
 * Test support: calls any gRPC method with raw request bytes (a passthrough serializer), so tests
 * can send what no generated client would, and reports how the call ended.
 */
import {
  type Client,
  Metadata,
  type MethodDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

/** Any method definition of a generated service. */
export type AnyMethod = MethodDefinition<unknown, unknown>;

/** A call that has not answered within this long counts as a hang (generous: loaded CI). */
export const CALL_DEADLINE_MS = 30_000;
/** A server stream that stays open without a message this long is cancelled (it answered). */
export const STREAM_IDLE_MS = 300;

const passthrough = (b: Buffer): Buffer => b;

/** How a call ended: a status code, or "open" for a server stream still running quietly. */
export type Outcome = { code: status; details: string } | { code: "open"; details: "" };

/**
 * Sends raw request bytes to a method and reports how the call ended. A client stream gets every
 * message, other calls the first.
 */
export function callRaw(
  client: Client,
  def: AnyMethod,
  messages: Buffer[],
  deadlineMs = CALL_DEADLINE_MS,
): Promise<Outcome> {
  const options = { deadline: Date.now() + deadlineMs };
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const cb = (err: ServiceError | null) =>
      done(err ? { code: err.code, details: err.details } : { code: status.OK, details: "" });
    if (def.requestStream) {
      const call = client.makeClientStreamRequest(
        def.path,
        passthrough,
        passthrough,
        new Metadata(),
        options,
        cb,
      );
      for (const m of messages) call.write(m);
      call.end();
      return;
    }
    if (def.responseStream) {
      const call = client.makeServerStreamRequest(
        def.path,
        passthrough,
        passthrough,
        messages[0] ?? Buffer.alloc(0),
        new Metadata(),
        options,
      );
      const idle = setTimeout(() => {
        done({ code: "open", details: "" });
        call.cancel();
      }, STREAM_IDLE_MS);
      call.on("data", () => {
        clearTimeout(idle);
        done({ code: status.OK, details: "" });
        call.cancel();
      });
      call.on("error", (err: ServiceError) => {
        clearTimeout(idle);
        done({ code: err.code, details: err.details });
      });
      call.on("end", () => {
        clearTimeout(idle);
        done({ code: status.OK, details: "" });
      });
      return;
    }
    client.makeUnaryRequest(
      def.path,
      passthrough,
      passthrough,
      messages[0] ?? Buffer.alloc(0),
      new Metadata(),
      options,
      cb,
    );
  });
}
