// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import {
  type ErrorCode,
  NstanceError,
  PreconditionFailedError,
  StorageError,
} from "../shared/errors.js";
import type { LogAttrs, Logger } from "../shared/logger.js";
import { fromGrpcError, GRPC_STATUS_BY_ERROR_CODE, toGrpcError } from "./to-grpc-error.js";

function recordingLogger(): Logger & { lines: Array<{ msg: string; attrs?: LogAttrs }> } {
  const lines: Array<{ msg: string; attrs?: LogAttrs }> = [];
  const logger = {
    lines,
    debug() {},
    info() {},
    warn() {},
    error(msg: string, attrs?: LogAttrs) {
      lines.push({ msg, attrs });
    },
    child: () => logger,
  };
  return logger;
}

const expected: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  precondition_failed: status.FAILED_PRECONDITION,
  permission_denied: status.PERMISSION_DENIED,
  unauthenticated: status.UNAUTHENTICATED,
  unavailable: status.UNAVAILABLE,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  aborted: status.ABORTED,
  cancelled: status.CANCELLED,
  internal: status.INTERNAL,
};

describe("toGrpcError", () => {
  for (const [code, grpcStatus] of Object.entries(expected) as Array<[ErrorCode, status]>) {
    it(`maps ${code} to ${status[grpcStatus]} and keeps the message`, () => {
      const logger = recordingLogger();
      const e = toGrpcError(new NstanceError(code, `boom ${code}`), { logger });
      assert.equal(e.code, grpcStatus);
      assert.equal(e.details, `boom ${code}`);
      assert.equal(e.message, `boom ${code}`);
      assert.ok(e.metadata instanceof Metadata);
      assert.equal(logger.lines.length, code === "internal" ? 1 : 0);
    });
  }

  it("covers every code", () => {
    assert.deepEqual(GRPC_STATUS_BY_ERROR_CODE, expected);
  });

  it("maps subclasses by their code", () => {
    const logger = recordingLogger();
    assert.equal(
      toGrpcError(new PreconditionFailedError("k"), { logger }).code,
      status.FAILED_PRECONDITION,
    );
    assert.equal(
      toGrpcError(new StorageError("get", "k", "down", true), { logger }).code,
      status.UNAVAILABLE,
    );
  });

  it("hides unexpected errors behind INTERNAL and logs them", () => {
    const logger = recordingLogger();
    const err = new Error("ENOENT: /var/secret/path");
    const e = toGrpcError(err, { logger, method: "/nstance.v1.OperatorService/ListGroups" });
    assert.equal(e.code, status.INTERNAL);
    assert.equal(e.details, "internal error");
    assert.ok(!e.message.includes("secret"));
    assert.equal(logger.lines.length, 1);
    assert.equal(logger.lines[0]?.attrs?.err, err);
    assert.equal(logger.lines[0]?.attrs?.method, "/nstance.v1.OperatorService/ListGroups");
    assert.equal(toGrpcError("a string", { logger }).code, status.INTERNAL);
  });

  it("maps aborts to CANCELLED", () => {
    const logger = recordingLogger();
    const e = toGrpcError(new DOMException("aborted", "AbortError"), { logger });
    assert.equal(e.code, status.CANCELLED);
    assert.equal(logger.lines.length, 0);
  });
});

describe("fromGrpcError", () => {
  it("round-trips every code", () => {
    const logger = recordingLogger();
    for (const code of Object.keys(expected) as ErrorCode[]) {
      const back = fromGrpcError(toGrpcError(new NstanceError(code, "m"), { logger }));
      assert.equal(back.code, code);
      assert.equal(back.message, "m");
    }
  });

  it("maps statuses without a code, and non-gRPC errors, to internal", () => {
    const unimplemented = Object.assign(new Error("12 UNIMPLEMENTED: x"), {
      code: status.UNIMPLEMENTED,
      details: "x",
      metadata: new Metadata(),
    });
    assert.equal(fromGrpcError(unimplemented).code, "internal");
    assert.equal(fromGrpcError(unimplemented).cause, unimplemented);
    assert.equal(fromGrpcError(new Error("plain")).code, "internal");
    const own = new NstanceError("not_found", "x");
    assert.equal(fromGrpcError(own), own);
  });
});
