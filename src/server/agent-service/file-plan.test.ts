// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FileConfig } from "../../config/server-config.js";
import {
  CA_CERT_FILE,
  certificatesDueForRenewal,
  expectedFiles,
  filesAwaitingKeys,
  planFileDelivery,
} from "./file-plan.js";
import type { ReportedFile } from "./health-report.js";

const present: ReportedFile = { kind: "present", at: new Date(0) };
const reported = (hash: string, files: Record<string, ReportedFile>) => ({
  configHash: hash,
  files: new Map(Object.entries(files)),
});
const none = new Set<string>();

describe("planFileDelivery", () => {
  const expected = ["a.env", "b.json", "c.crt", "ca.crt"];
  const cases = [
    {
      name: "no report yet: the whole set",
      reported: undefined,
      want: { mode: "whole", files: ["a.env", "b.json", "c.crt", "ca.crt"] },
    },
    {
      name: "hash differs: the whole set even if every file is present",
      reported: reported("sha256:old", {
        "a.env": present,
        "b.json": present,
        "c.crt": present,
        "ca.crt": present,
      }),
      want: { mode: "whole", files: ["a.env", "b.json", "c.crt", "ca.crt"] },
    },
    {
      name: "hash matches, all present: nothing",
      reported: reported("sha256:new", {
        "a.env": present,
        "b.json": present,
        "c.crt": present,
        "ca.crt": present,
      }),
      want: { mode: "none", files: [] },
    },
    {
      name: "hash matches: missing, empty and errored files",
      reported: reported("sha256:new", {
        "a.env": { kind: "error", error: "bad" },
        "c.crt": { kind: "empty" },
        "ca.crt": present,
      }),
      want: { mode: "partial", files: ["a.env", "b.json", "c.crt"] },
    },
  ] as const;
  for (const tc of cases) {
    it(tc.name, () => {
      assert.deepEqual(
        planFileDelivery({
          expected,
          runtimeHash: "sha256:new",
          reported: tc.reported,
          undeliverable: none,
          forced: none,
        }),
        tc.want,
      );
    });
  }

  it("leaves out files that cannot be produced yet, in both modes", () => {
    const undeliverable = new Set(["c.crt"]);
    assert.deepEqual(
      planFileDelivery({
        expected,
        runtimeHash: "h",
        reported: undefined,
        undeliverable,
        forced: none,
      }).files,
      ["a.env", "b.json", "ca.crt"],
    );
    assert.deepEqual(
      planFileDelivery({
        expected,
        runtimeHash: "h",
        reported: reported("h", {}),
        undeliverable,
        forced: none,
      }).files,
      ["a.env", "b.json", "ca.crt"],
    );
  });

  it("includes forced files even when present", () => {
    const all = reported("h", {
      "a.env": present,
      "b.json": present,
      "c.crt": present,
      "ca.crt": present,
    });
    assert.deepEqual(
      planFileDelivery({
        expected,
        runtimeHash: "h",
        reported: all,
        undeliverable: none,
        forced: new Set(["c.crt"]),
      }),
      { mode: "partial", files: ["c.crt"] },
    );
  });
});

describe("file sets", () => {
  const files: Record<string, FileConfig> = {
    "kubelet.crt": {
      kind: "certificate",
      template: "kubelet",
      key: { source: "agent", name: "kubelet.pub" },
    },
    "a.env": { kind: "env", template: {} },
  };

  it("expects the template's files and the cluster CA", () => {
    assert.deepEqual(expectedFiles({ files }), ["kubelet.crt", "a.env", CA_CERT_FILE]);
    assert.deepEqual(expectedFiles({ files: { "ca.crt": { kind: "string", template: "x" } } }), [
      "ca.crt",
    ]);
  });

  it("holds back certificates whose key has not been submitted", () => {
    assert.deepEqual([...filesAwaitingKeys({ files }, new Set())], ["kubelet.crt"]);
    assert.deepEqual([...filesAwaitingKeys({ files }, new Set(["kubelet.pub"]))], []);
  });

  it("renews a certificate once less than a third of its lifetime remains", () => {
    const issued = new Map([["kubelet.crt", { issuedAt: 0, expiresAt: 300 }]]);
    assert.deepEqual([...certificatesDueForRenewal({ files }, issued, 199)], []);
    assert.deepEqual([...certificatesDueForRenewal({ files }, issued, 200)], ["kubelet.crt"]);
  });
});
