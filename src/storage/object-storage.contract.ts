// SPDX-License-Identifier: Apache-2.0
/**
 * The behaviour every ObjectStorage backend must show, as a node:test suite. A backend's test
 * file calls `runStorageContract("s3", () => new S3Storage(…))`. Each case works under its own
 * key namespace, so backends that share one bucket across cases need no cleanup.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { NstanceError, PreconditionFailedError } from "../shared/errors.js";
import type { ObjectStorage } from "./object-storage.js";

/** Concurrent writers in the race cases. */
const RACERS = 20;

/** Returns the settled results split into winners' values and losers' errors. */
async function race<T>(tasks: Array<() => Promise<T>>): Promise<{ won: T[]; lost: unknown[] }> {
  const results = await Promise.allSettled(tasks.map((t) => t()));
  const won: T[] = [];
  const lost: unknown[] = [];
  for (const r of results) {
    if (r.status === "fulfilled") won.push(r.value);
    else lost.push(r.reason);
  }
  return { won, lost };
}

/** Registers the contract suite for one backend; `makeStorage` is called once per case. */
export function runStorageContract(
  name: string,
  makeStorage: () => ObjectStorage | Promise<ObjectStorage>,
): void {
  let seq = 0;
  /** A fresh storage and a key namespace no other case uses. */
  const setup = async (): Promise<{ s: ObjectStorage; ns: string; k: (p: string) => string }> => {
    const ns = `contract-${process.pid}-${Date.now().toString(36)}-${seq++}`;
    return { s: await makeStorage(), ns, k: (p: string) => `${ns}/${p}` };
  };

  describe(`ObjectStorage contract: ${name}`, () => {
    it("get and head of a missing key return undefined", async () => {
      const { s, k } = await setup();
      assert.equal(await s.get(k("missing")), undefined);
      assert.equal(await s.head(k("missing")), undefined);
      assert.equal(await s.get(k("missing/deeper/still")), undefined);
    });

    it("put then get round-trips body and etag", async () => {
      const { s, k } = await setup();
      const etag = await s.put(k("a.json"), '{"hello":"wörld"}', {
        contentType: "application/json",
      });
      assert.ok(etag.length > 0, "etag is not empty");
      assert.ok(!etag.includes('"'), "etag has no quotes");
      const got = await s.get(k("a.json"));
      assert.ok(got);
      assert.equal(got.body.toString("utf8"), '{"hello":"wörld"}');
      assert.equal(got.etag, etag);
      if (got.lastModified !== undefined) {
        assert.ok(got.lastModified instanceof Date && !Number.isNaN(got.lastModified.getTime()));
      }
    });

    it("head returns key, etag and size", async () => {
      const { s, k } = await setup();
      const etag = await s.put(k("h"), Buffer.from("12345"));
      const info = await s.head(k("h"));
      assert.ok(info);
      assert.equal(info.key, k("h"));
      assert.equal(info.etag, etag);
      assert.equal(info.size, 5);
    });

    it("overwriting changes the etag", async () => {
      const { s, k } = await setup();
      const e1 = await s.put(k("o"), "one");
      const e2 = await s.put(k("o"), "two");
      assert.notEqual(e1, e2);
      const got = await s.get(k("o"));
      assert.equal(got?.body.toString(), "two");
      assert.equal(got?.etag, e2);
    });

    it("create-only succeeds on a missing key and fails on an existing one", async () => {
      const { s, k } = await setup();
      const etag = await s.put(k("c"), "first", { condition: { ifNoneMatch: "*" } });
      await assert.rejects(
        s.put(k("c"), "second", { condition: { ifNoneMatch: "*" } }),
        (err: unknown) => err instanceof PreconditionFailedError && err.key.endsWith(k("c")),
      );
      const got = await s.get(k("c"));
      assert.equal(got?.body.toString(), "first");
      assert.equal(got?.etag, etag);
    });

    it("ifMatch with the current etag replaces; with a stale etag fails", async () => {
      const { s, k } = await setup();
      const e1 = await s.put(k("m"), "v1");
      const e2 = await s.put(k("m"), "v2", { condition: { ifMatch: e1 } });
      assert.notEqual(e2, e1);
      await assert.rejects(
        s.put(k("m"), "v3", { condition: { ifMatch: e1 } }),
        PreconditionFailedError,
      );
      const got = await s.get(k("m"));
      assert.equal(got?.body.toString(), "v2");
      assert.equal(got?.etag, e2);
    });

    it("ifMatch on a missing key fails", async () => {
      const { s, k } = await setup();
      const other = await s.put(k("exists"), "x");
      await assert.rejects(
        s.put(k("absent"), "y", { condition: { ifMatch: other } }),
        PreconditionFailedError,
      );
      assert.equal(await s.get(k("absent")), undefined);
    });

    it("delete removes an object; deleting a missing key succeeds", async () => {
      const { s, k } = await setup();
      await s.delete(k("never-existed"));
      await s.put(k("d/x"), "x");
      await s.delete(k("d/x"));
      assert.equal(await s.get(k("d/x")), undefined);
      assert.equal(await s.head(k("d/x")), undefined);
      await s.delete(k("d/x"));
      // The key can be created again, create-only.
      await s.put(k("d/x"), "again", { condition: { ifNoneMatch: "*" } });
      assert.equal((await s.get(k("d/x")))?.body.toString(), "again");
    });

    it("list returns keys under a prefix, nested ones included, sorted", async () => {
      const { s, ns, k } = await setup();
      const keys = [
        "list/b",
        "list/a",
        "list/c/d",
        "list/c/a",
        "list/c/b/deep",
        "lister",
        "list/z",
      ];
      const etags = new Map<string, string>();
      for (const key of [...keys, "other/x"]) etags.set(k(key), await s.put(k(key), `v:${key}`));
      const all = await s.list(`${ns}/list/`);
      assert.deepEqual(
        all.map((o) => o.key),
        ["list/a", "list/b", "list/c/a", "list/c/b/deep", "list/c/d", "list/z"].map(k),
      );
      for (const o of all) {
        assert.equal(o.etag, etags.get(o.key));
        assert.equal(o.size, Buffer.byteLength(`v:${o.key.slice(ns.length + 1)}`));
      }
      assert.deepEqual(
        (await s.list(`${ns}/list`)).map((o) => o.key),
        ["list/a", "list/b", "list/c/a", "list/c/b/deep", "list/c/d", "list/z", "lister"].map(k),
      );
      assert.deepEqual(
        (await s.list(`${ns}/list/c/`)).map((o) => o.key),
        ["list/c/a", "list/c/b/deep", "list/c/d"].map(k),
      );
      assert.deepEqual(
        (await s.list(`${ns}/list/c/b`)).map((o) => o.key),
        [k("list/c/b/deep")],
      );
      assert.deepEqual(await s.list(`${ns}/nothing/`), []);
      assert.equal((await s.list(`${ns}/`)).length, keys.length + 1);
    });

    it("binary bodies round-trip byte for byte", async () => {
      const { s, k } = await setup();
      const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const random = randomBytes(70_000);
      const invalidUtf8 = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x00, 0x80]);
      for (const [key, body] of [
        ["bin/every", every],
        ["bin/random", random],
        ["bin/invalid-utf8", invalidUtf8],
        ["bin/empty", Buffer.alloc(0)],
      ] as const) {
        const etag = await s.put(k(key), body);
        const got = await s.get(k(key));
        assert.ok(got, key);
        assert.ok(got.body.equals(body), `${key} round-trips`);
        assert.equal(got.etag, etag);
        assert.equal((await s.head(k(key)))?.size, body.length);
      }
    });

    it("stored bodies do not change when the caller's buffer does", async () => {
      const { s, k } = await setup();
      const buf = Buffer.from("original");
      await s.put(k("alias"), buf);
      buf.write("CHANGED!");
      const got = await s.get(k("alias"));
      assert.equal(got?.body.toString(), "original");
    });

    it(`${RACERS} concurrent create-only writes to one key: exactly one wins`, async () => {
      const { s, k } = await setup();
      const { won, lost } = await race(
        Array.from({ length: RACERS }, (_, i) => async () => {
          const etag = await s.put(k("race"), `writer-${i}`, { condition: { ifNoneMatch: "*" } });
          return { i, etag };
        }),
      );
      assert.equal(won.length, 1, `one winner, got ${won.length}`);
      assert.equal(lost.length, RACERS - 1);
      for (const err of lost) assert.ok(err instanceof PreconditionFailedError, String(err));
      const got = await s.get(k("race"));
      assert.equal(got?.body.toString(), `writer-${won[0]!.i}`);
      assert.equal(got?.etag, won[0]!.etag);
    });

    it(`${RACERS} concurrent ifMatch writes from one etag: exactly one wins`, async () => {
      const { s, k } = await setup();
      const base = await s.put(k("cas"), "base");
      const { won, lost } = await race(
        Array.from({ length: RACERS }, (_, i) => async () => {
          const etag = await s.put(k("cas"), `writer-${i}`, { condition: { ifMatch: base } });
          return { i, etag };
        }),
      );
      assert.equal(won.length, 1, `one winner, got ${won.length}`);
      for (const err of lost) assert.ok(err instanceof PreconditionFailedError, String(err));
      const got = await s.get(k("cas"));
      assert.equal(got?.body.toString(), `writer-${won[0]!.i}`);
      assert.equal(got?.etag, won[0]!.etag);
    });

    it("rejects invalid keys with invalid_argument", async () => {
      const { s, k } = await setup();
      for (const bad of ["", "/abs", "a//b", "../up", "a/../b", "a/./b", "trailing/"]) {
        const key = bad === "" || bad.startsWith("/") ? bad : k(bad);
        for (const op of [() => s.get(key), () => s.put(key, "x"), () => s.delete(key)]) {
          await assert.rejects(
            op(),
            (err: unknown) => err instanceof NstanceError && err.code === "invalid_argument",
            `key ${JSON.stringify(key)}`,
          );
        }
      }
      await assert.rejects(
        s.list("../"),
        (err: unknown) => err instanceof NstanceError && err.code === "invalid_argument",
      );
    });

    it("an aborted signal rejects the call", async () => {
      const { s, k } = await setup();
      await s.put(k("sig"), "x");
      const signal = AbortSignal.abort();
      await assert.rejects(s.get(k("sig"), signal));
      await assert.rejects(s.put(k("sig"), "y", { signal }));
      assert.equal((await s.get(k("sig")))?.body.toString(), "x");
    });
  });
}
