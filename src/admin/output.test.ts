// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import {
  formatVars,
  GROUP_TABLE_HEADERS,
  groupRow,
  renderError,
  renderKeyValues,
  renderTable,
  shardResultsJson,
} from "./output.js";
import type { GroupInfo, ShardResult } from "./service/admin-service.js";
import { RemoteError } from "./service/remote-error.js";

const web: GroupInfo = {
  key: "web",
  tenant: "default",
  template: "knc",
  size: 3,
  instanceType: "m6i.large",
  subnetPool: "",
  vars: { zone: "a", env: "prod" },
  isStatic: true,
  etag: "e1",
  actualSize: 2,
  providerIds: ["i-1", "i-2"],
};

describe("renderTable", () => {
  it("aligns columns to the widest cell, two spaces apart, without trailing spaces", () => {
    const text = renderTable(
      ["SHARD", "GROUP", "SIZE"],
      [
        ["us-west-2a", "web", "3"],
        ["b", "workers-long-name", "12"],
      ],
    );
    assert.equal(
      text,
      "SHARD       GROUP              SIZE\n" +
        "us-west-2a  web                3\n" +
        "b           workers-long-name  12\n",
    );
  });

  it("shows empty cells as '-' so columns stay parseable", () => {
    assert.equal(renderTable(["A", "B", "C"], [["x", "", "z"]]), "A  B  C\nx  -  z\n");
  });

  it("renders a header alone when there are no rows", () => {
    assert.equal(renderTable(["SHARD", "GROUP"], []), "SHARD  GROUP\n");
  });

  it("renders group rows with the documented columns", () => {
    assert.equal(
      renderTable(GROUP_TABLE_HEADERS, [groupRow("s1", web)]),
      "SHARD  GROUP  TEMPLATE  SIZE  ACTUAL  INSTANCE_TYPE  SUBNET_POOL  STATIC\n" +
        "s1     web    knc       3     2       m6i.large      -            yes\n",
    );
  });
});

describe("renderKeyValues and helpers", () => {
  it("aligns values after the labels", () => {
    assert.equal(
      renderKeyValues([
        ["Shard", "s1"],
        ["Instance type", ""],
      ]),
      "Shard:          s1\nInstance type:  -\n",
    );
  });

  it("sorts vars by key", () => {
    assert.equal(formatVars({ zone: "a", env: "prod" }), "env=prod, zone=a");
  });

  it("prefixes errors", () => {
    assert.equal(renderError("shard s1: boom"), "error: shard s1: boom\n");
  });
});

describe("shardResultsJson", () => {
  it("emits one result per shard with snake_case values or an error code and message", () => {
    const results: ShardResult<GroupInfo>[] = [
      { shard: "a", address: "h:1", ok: true, value: web },
      {
        shard: "b",
        address: "h:2",
        ok: false,
        error: new RemoteError(
          "shard b",
          "h:2",
          new NstanceError("precondition_failed", "not the shard leader; the leader is s2"),
          30_000,
        ),
      },
    ];
    const doc = JSON.parse(
      shardResultsJson(results, "group", (g) => ({ key: g.key, actual_size: g.actualSize })),
    ) as unknown;
    assert.deepEqual(doc, {
      results: [
        { shard: "a", address: "h:1", ok: true, group: { key: "web", actual_size: 2 } },
        {
          shard: "b",
          address: "h:2",
          ok: false,
          error: {
            code: "precondition_failed",
            message: "not the shard leader; the leader is s2",
          },
        },
      ],
    });
  });
});
