// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { resolveUserdata } from "./resolve-userdata.js";

const script = "#!/bin/sh\necho {{ .Instance.ID }}\n";

describe("resolveUserdata", () => {
  it("decodes inline content", async () => {
    assert.equal(
      await resolveUserdata({ source: "inline", encoding: "plain", content: script }),
      script,
    );
    assert.equal(
      await resolveUserdata({
        source: "inline",
        encoding: "base64",
        content: Buffer.from(script).toString("base64"),
      }),
      script,
    );
    assert.equal(
      await resolveUserdata({
        source: "inline",
        encoding: "base64+gzip",
        content: gzipSync(script).toString("base64"),
      }),
      script,
    );
  });

  it("fetches URL content and decodes gzip", async () => {
    const fetched: string[] = [];
    const fetchFn = async (url: string): Promise<Buffer> => {
      fetched.push(url);
      return gzipSync(script);
    };
    const text = await resolveUserdata(
      { source: "url", encoding: "gzip", content: "https://example.test/u.gz" },
      fetchFn,
    );
    assert.equal(text, script);
    assert.deepEqual(fetched, ["https://example.test/u.gz"]);
  });

  it("refuses content that is not in its encoding", async () => {
    await assert.rejects(
      resolveUserdata({ source: "inline", encoding: "base64+gzip", content: "bm90IGd6aXA=" }),
      { code: "invalid_argument", message: /not valid base64\+gzip/ },
    );
  });
});
