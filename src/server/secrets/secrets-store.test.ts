// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { NstanceError } from "../../shared/errors.js";
import type { LogAttrs, Logger } from "../../shared/logger.js";
import { MemoryStorage } from "../../storage/memory-storage.js";
import { deleteSecret, listSecrets, putSecret } from "./secret-rpcs.js";
import {
  createSecretsStore,
  MemorySecretsStore,
  ObjectStorageSecretsStore,
} from "./secrets-store.js";

function capturingLogger(): Logger & { text: string[] } {
  const text: string[] = [];
  const log = (msg: string, attrs?: LogAttrs) => {
    text.push(`${msg} ${JSON.stringify(attrs ?? {})}`);
  };
  const l = { text, debug: log, info: log, warn: log, error: log, child: () => l };
  return l;
}

const code = (c: string) => (err: unknown) => err instanceof NstanceError && err.code === c;

describe("ObjectStorageSecretsStore", () => {
  it("stores values encrypted under cluster/secret/<name> and reads them back", async () => {
    const storage = new MemoryStorage();
    const logger = capturingLogger();
    const store = new ObjectStorageSecretsStore({
      storage,
      encryptionKey: randomBytes(32),
      logger,
    });
    await store.put("db-password", "hunter2-very-secret");
    const raw = await storage.get("cluster/secret/db-password");
    assert.ok(raw, "stored at the cluster secret prefix");
    assert.ok(!raw.body.includes(Buffer.from("hunter2")), "not stored in plaintext");
    assert.equal(
      raw.body.length,
      12 + "hunter2-very-secret".length + 16,
      "nonce ‖ ciphertext ‖ tag",
    );
    assert.equal((await store.get("db-password"))?.toString(), "hunter2-very-secret");
    assert.equal(await store.get("missing"), undefined);
    assert.ok(!logger.text.join("\n").includes("hunter2"), "values never logged");
  });

  it("lists names sorted, leaving out the cluster's reserved secrets", async () => {
    const storage = new MemoryStorage();
    const store = new ObjectStorageSecretsStore({
      storage,
      encryptionKey: randomBytes(32),
      logger: capturingLogger(),
    });
    await storage.put("cluster/secret/ca.key", "pem");
    await store.put("zeta", "1");
    await store.put("alpha", "2");
    assert.deepEqual(await store.list(), ["alpha", "zeta"]);
    await store.delete("zeta");
    await store.delete("zeta");
    assert.deepEqual(await store.list(), ["alpha"]);
  });

  it("refuses reserved and malformed names on every operation", async () => {
    const store = new ObjectStorageSecretsStore({
      storage: new MemoryStorage(),
      encryptionKey: randomBytes(32),
      logger: capturingLogger(),
    });
    await assert.rejects(store.get("ca.key"), code("permission_denied"));
    await assert.rejects(store.put("registration-nonce.key", "x"), code("permission_denied"));
    await assert.rejects(store.put("../escape", "x"), code("invalid_argument"));
    await assert.rejects(store.delete(".hidden"), code("invalid_argument"));
  });

  it("fails without revealing the value when another key encrypted it, and decrypts with an old key", async () => {
    const storage = new MemoryStorage();
    const oldKey = randomBytes(32);
    await new ObjectStorageSecretsStore({
      storage,
      encryptionKey: oldKey,
      logger: capturingLogger(),
    }).put("tok", "value-123");
    const other = new ObjectStorageSecretsStore({
      storage,
      encryptionKey: randomBytes(32),
      logger: capturingLogger(),
    });
    await assert.rejects(
      other.get("tok"),
      (err: unknown) => code("internal")(err) && !String(err).includes("value-123"),
    );
    const rotated = new ObjectStorageSecretsStore({
      storage,
      encryptionKey: randomBytes(32),
      decryptOnlyKeys: [oldKey],
      logger: capturingLogger(),
    });
    assert.equal((await rotated.get("tok"))?.toString(), "value-123");
  });
});

describe("createSecretsStore", () => {
  it("requires an encryption key for object-storage and honours the prefix", async () => {
    const storage = new MemoryStorage();
    assert.throws(
      () =>
        createSecretsStore(
          { provider: "object-storage", prefix: "secret/" },
          { storage, encryptionKey: undefined, logger: capturingLogger() },
        ),
      code("invalid_argument"),
    );
    const s = createSecretsStore(
      { provider: "object-storage", prefix: "custom/" },
      { storage, encryptionKey: randomBytes(32), logger: capturingLogger() },
    );
    await s.put("a", "b");
    assert.ok(await storage.get("cluster/custom/a"));
    assert.ok(
      createSecretsStore(
        { provider: "memory", prefix: "" },
        { storage, encryptionKey: undefined, logger: capturingLogger() },
      ) instanceof MemorySecretsStore,
    );
  });
});

describe("secret RPCs", () => {
  it("put, list and delete through the store; writes need the leader", async () => {
    let leading = true;
    const leadership = {
      isLeader: () => leading,
      leader: () => ({ id: "s1", addr: "10.0.0.1:8991", term: 1 }),
    };
    const secrets = new MemorySecretsStore();
    await putSecret({ leadership, secrets }, { name: "api-key", value: Buffer.from("v") });
    assert.deepEqual(await listSecrets({ secrets }), { names: ["api-key"] });
    await assert.rejects(
      putSecret({ leadership, secrets }, { name: "ca.key", value: Buffer.from("v") }),
      code("permission_denied"),
    );
    await assert.rejects(
      putSecret({ leadership, secrets }, { name: "big", value: Buffer.alloc(2 * 1024 * 1024) }),
      code("invalid_argument"),
    );
    leading = false;
    await assert.rejects(
      deleteSecret({ leadership, secrets }, { name: "api-key" }),
      (err: unknown) =>
        code("precondition_failed")(err) && /s1 at 10\.0\.0\.1:8991/.test(String(err)),
    );
    assert.deepEqual(
      await listSecrets({ secrets }),
      { names: ["api-key"] },
      "listing works on a standby",
    );
    leading = true;
    await deleteSecret({ leadership, secrets }, { name: "api-key" });
    assert.deepEqual(await listSecrets({ secrets }), { names: [] });
  });
});
