// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../../shared/errors.js";
import { describeUnavailable, RemoteError } from "./remote-error.js";

describe("RemoteError", () => {
  it("labels server answers with the target only", () => {
    const e = new RemoteError(
      "shard us-west-2a",
      "10.0.0.1:8993",
      new NstanceError(
        "precondition_failed",
        "not the shard leader; the leader is s2 at 10.0.0.2:8993",
      ),
      30_000,
    );
    assert.equal(
      e.message,
      "shard us-west-2a: not the shard leader; the leader is s2 at 10.0.0.2:8993",
    );
    assert.equal(e.code, "precondition_failed");
  });

  it("adds the address to transport failures and names the timeout", () => {
    const e = new RemoteError(
      "shard a",
      "h:1",
      new NstanceError("deadline_exceeded", "Deadline exceeded"),
      5_000,
    );
    assert.equal(e.message, "shard a (h:1): no answer within 5s (--timeout)");
  });
});

describe("describeUnavailable", () => {
  const cases: Array<[string, string]> = [
    [
      "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1 (2025-01-01T00:00:00.000Z). Resolution note: ",
      "connect ECONNREFUSED 127.0.0.1:1",
    ],
    ["connect ECONNREFUSED 127.0.0.1:1. Resolution note: ", "connect ECONNREFUSED 127.0.0.1:1"],
    [
      "Failed to connect (2026-11-23T10:29:33.832Z). Resolution note: ",
      "the server closed the connection during the TLS handshake (is the operator certificate from this cluster's CA and still valid?)",
    ],
    [
      "self-signed certificate in certificate chain. Resolution note: ",
      "self-signed certificate in certificate chain (the server certificate must chain to the cluster CA in ca.crt and name the dialled host)",
    ],
    [
      "Name resolution failed for target dns:x.invalid:1",
      "Name resolution failed for target dns:x.invalid:1",
    ],
  ];
  for (const [raw, want] of cases) {
    it(JSON.stringify(raw.slice(0, 40)), () => assert.equal(describeUnavailable(raw), want));
  }
});
