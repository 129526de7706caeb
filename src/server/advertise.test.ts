// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { effectiveAdvertise, effectiveBinds } from "./advertise.js";

const bind = {
  health: "0.0.0.0:8990",
  election: "0.0.0.0:8991",
  registration: "0.0.0.0:8992",
  operator: "0.0.0.0:8993",
  agent: "0.0.0.0:8994",
};
const advertise = { ...bind, registration: "10.0.0.5:8992", agent: ":8994" };

describe("advertise addresses", () => {
  it("uses config hosts, auto-detects unspecified ones", () => {
    const a = effectiveAdvertise(advertise, bind, { bindOverrides: {} }, () => "192.0.2.7");
    assert.equal(a.registration, "10.0.0.5:8992");
    assert.equal(a.agent, "192.0.2.7:8994");
    assert.equal(a.election, "192.0.2.7:8991");
  });
  it("--advertise-host wins over every host", () => {
    const a = effectiveAdvertise(advertise, bind, {
      bindOverrides: {},
      advertiseHost: "ctl.example",
    });
    assert.equal(a.registration, "ctl.example:8992");
  });
  it("an overridden bind moves the advertised port and uses a specific bind host", () => {
    const o = { bindOverrides: { election: "127.0.0.1:9991" } };
    assert.equal(effectiveBinds(bind, o).election, "127.0.0.1:9991");
    assert.equal(effectiveAdvertise(advertise, bind, o, () => "x").election, "127.0.0.1:9991");
  });
});
