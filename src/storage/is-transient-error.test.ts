// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError, PreconditionFailedError, StorageError } from "../shared/errors.js";
import { isTransientError, wrapStorageError } from "./is-transient-error.js";

const withProps = (props: Record<string, unknown>, name = "Error"): Error =>
  Object.assign(new Error("x"), { name }, props);

describe("isTransientError", () => {
  const cases: Array<{ name: string; err: unknown; want: boolean }> = [
    { name: "S3 503", err: withProps({ $metadata: { httpStatusCode: 503 } }), want: true },
    { name: "S3 500", err: withProps({ $metadata: { httpStatusCode: 500 } }), want: true },
    { name: "S3 429", err: withProps({ $metadata: { httpStatusCode: 429 } }), want: true },
    { name: "S3 403", err: withProps({ $metadata: { httpStatusCode: 403 } }), want: false },
    { name: "S3 412", err: withProps({ $metadata: { httpStatusCode: 412 } }), want: false },
    { name: "GCS ApiError 502", err: withProps({ code: 502 }), want: true },
    { name: "GCS ApiError 404", err: withProps({ code: 404 }), want: false },
    { name: "ECONNRESET", err: withProps({ code: "ECONNRESET" }), want: true },
    { name: "ECONNREFUSED", err: withProps({ code: "ECONNREFUSED" }), want: true },
    { name: "ENOENT", err: withProps({ code: "ENOENT" }), want: false },
    { name: "EACCES", err: withProps({ code: "EACCES" }), want: false },
    { name: "SDK TimeoutError", err: withProps({}, "TimeoutError"), want: true },
    { name: "caller AbortError", err: withProps({}, "AbortError"), want: false },
    {
      name: "fetch failed with a reset cause",
      err: new TypeError("fetch failed", { cause: withProps({ code: "ECONNRESET" }) }),
      want: true,
    },
    { name: "transient StorageError", err: new StorageError("get", "k", "x", true), want: true },
    { name: "permanent StorageError", err: new StorageError("get", "k", "x", false), want: false },
    { name: "PreconditionFailedError", err: new PreconditionFailedError("k"), want: false },
    { name: "invalid_argument", err: new NstanceError("invalid_argument", "bad key"), want: false },
    { name: "plain Error", err: new Error("bug"), want: false },
    { name: "string", err: "oops", want: false },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.equal(isTransientError(tc.err), tc.want));
  }
});

describe("wrapStorageError", () => {
  it("wraps SDK errors with op, key, status and transience", () => {
    const cause = withProps({ $metadata: { httpStatusCode: 503 } });
    const err = wrapStorageError("put", "a/b", cause);
    assert.ok(err instanceof StorageError);
    assert.equal(err.op, "put");
    assert.equal(err.key, "a/b");
    assert.equal(err.transient, true);
    assert.equal(err.cause, cause);
    assert.match(err.message, /^storage put a\/b: HTTP 503: x$/);
  });

  it("passes typed errors and aborts through", () => {
    const pf = new PreconditionFailedError("k");
    assert.equal(wrapStorageError("put", "k", pf), pf);
    const abort = withProps({}, "AbortError");
    assert.equal(wrapStorageError("get", "k", abort), abort);
  });
});
