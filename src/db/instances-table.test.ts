// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openDatabase } from "./database.js";
import {
  findInstanceByNonce,
  getInstance,
  insertPendingInstance,
  isActiveInstance,
  listActiveInstancesByGroup,
  listInstanceDecisions,
  listTenantInstances,
  markInstanceRegistered,
  renewInstanceCertSerial,
} from "./instances-table.js";
import { getOperator, listOperators, upsertOperator } from "./operators-table.js";

describe("instances table", () => {
  const db = openDatabase({ path: ":memory:" });
  const insert = (id: string, extra: { tenant?: string; createdAt?: number } = {}) =>
    insertPendingInstance(db, {
      id,
      tenant: extra.tenant ?? "default",
      groupKey: "web",
      nonce: `nonce-${id}`,
      infraConfigHash: "sha256:x",
      createdAt: extra.createdAt ?? 1000,
    });

  it("inserts a pending row and finds it by id and by nonce", () => {
    insert("a");
    const row = getInstance(db, "a");
    assert.equal(row?.nonce, "nonce-a");
    assert.equal(row?.registeredAt, undefined);
    assert.equal(row?.onDemand, false);
    assert.equal(findInstanceByNonce(db, "nonce-a")?.id, "a");
    assert.equal(findInstanceByNonce(db, "nonce-zzz"), undefined);
    assert.throws(() => insert("a"), /UNIQUE/);
  });

  it("marks a registration once; empty addresses keep stored ones", () => {
    db.prepare("UPDATE instances SET hostname = 'provider-name' WHERE id = 'a'").run();
    const reg = {
      id: "a",
      registeredAt: 2000,
      instancePub: "PEM",
      certSerial: "01",
      ip4: "10.0.0.1",
      hostname: "",
    };
    assert.equal(markInstanceRegistered(db, reg), true);
    assert.equal(markInstanceRegistered(db, { ...reg, certSerial: "02" }), false);
    const row = getInstance(db, "a")!;
    assert.deepEqual(
      [row.registeredAt, row.certSerial, row.ip4, row.hostname],
      [2000, "01", "10.0.0.1", "provider-name"],
    );
  });

  it("renews a certificate serial only from the stored one, on a registered live row", () => {
    insert("renew-a");
    const renewal = { id: "renew-a", previousSerial: "01", certSerial: "02", renewedAt: 3000 };
    assert.equal(renewInstanceCertSerial(db, renewal), false, "not registered yet");
    markInstanceRegistered(db, {
      id: "renew-a",
      registeredAt: 2000,
      instancePub: "PEM",
      certSerial: "01",
    });
    assert.equal(renewInstanceCertSerial(db, { ...renewal, previousSerial: "00" }), false);
    assert.equal(renewInstanceCertSerial(db, renewal), true);
    assert.equal(renewInstanceCertSerial(db, renewal), false, "01 is superseded now");
    const row = getInstance(db, "renew-a")!;
    assert.deepEqual([row.certSerial, row.updatedAt, row.instancePub], ["02", 3000, "PEM"]);
    db.prepare("UPDATE instances SET deleted_at = 4000 WHERE id = 'renew-a'").run();
    assert.equal(
      renewInstanceCertSerial(db, { ...renewal, previousSerial: "02", certSerial: "03" }),
      false,
      "a deleted row keeps its serial",
    );
    assert.equal(getInstance(db, "renew-a")!.certSerial, "02");
    db.prepare("DELETE FROM instances WHERE id = 'renew-a'").run();
  });

  it("lists active rows of a group, excluding deleted and deleting ones", () => {
    insert("b", { createdAt: 500 });
    insert("c");
    insert("d");
    insert("e", { tenant: "other" });
    db.prepare("UPDATE instances SET deleted_at = 1 WHERE id = 'c'").run();
    db.prepare(
      `UPDATE instances SET provider_state = '{"status":"deleting"}' WHERE id = 'd'`,
    ).run();
    assert.deepEqual(
      listActiveInstancesByGroup(db, "default", "web").map((r) => r.id),
      ["b", "a"],
    );
    assert.equal(isActiveInstance(getInstance(db, "d")!), false);
    assert.deepEqual(
      listTenantInstances(db, "default").map((r) => r.id),
      ["b", "a", "c", "d"],
    );
    assert.deepEqual(listTenantInstances(db, "default", "nope"), []);
  });

  it("lists an instance's decisions oldest first", () => {
    const ins = db.prepare(
      "INSERT INTO decisions (instance_id, at, decision, reason, evidence) VALUES (?, ?, ?, ?, ?)",
    );
    ins.run("a", 1, "create", "scale_up", '{"size":"3"}');
    ins.run("a", 2, "drain", "unhealthy", "not json");
    const out = listInstanceDecisions(db, "a");
    assert.deepEqual(
      out.map((d) => [d.decision, d.evidence]),
      [
        ["create", { size: "3" }],
        ["drain", {}],
      ],
    );
  });
});

describe("operators table", () => {
  const db = openDatabase({ path: ":memory:" });
  it("upserts and reads operators by tenant", () => {
    upsertOperator(db, {
      id: "opr-1",
      tenant: "t",
      publicKey: "K1",
      certSerial: "01",
      registeredAt: 1,
    });
    upsertOperator(db, {
      id: "opr-1",
      tenant: "t",
      publicKey: "K2",
      certSerial: "02",
      registeredAt: 2,
    });
    upsertOperator(db, {
      id: "opr-2",
      tenant: "u",
      publicKey: "K3",
      certSerial: undefined,
      registeredAt: 3,
    });
    assert.deepEqual(getOperator(db, "opr-1"), {
      id: "opr-1",
      tenant: "t",
      publicKey: "K2",
      certSerial: "02",
      registeredAt: 2,
    });
    assert.deepEqual(
      listOperators(db, "u").map((o) => [o.id, o.certSerial]),
      [["opr-2", undefined]],
    );
    assert.equal(getOperator(db, "nope"), undefined);
  });
});
