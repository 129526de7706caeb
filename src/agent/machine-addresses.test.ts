// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { machineAddresses, pickMachineAddresses } from "./machine-addresses.js";

describe("pickMachineAddresses", () => {
  it("skips loopback and link-local, takes the first of each family in order", () => {
    const got = pickMachineAddresses({
      lo: [
        { address: "127.0.0.1", family: "IPv4", internal: true },
        { address: "::1", family: "IPv6", internal: true },
      ],
      eth0: [
        { address: "fe80::1", family: "IPv6", internal: false },
        { address: "10.0.0.5", family: "IPv4", internal: false },
        { address: "2001:db8::5", family: "IPv6", internal: false },
      ],
      eth1: [{ address: "10.0.1.9", family: 4, internal: false }],
    });
    assert.deepEqual(got, { ipv4: "10.0.0.5", ipv6: "2001:db8::5" });
  });

  it("accepts numeric families and reports empty strings when nothing fits", () => {
    assert.deepEqual(
      pickMachineAddresses({ eth0: [{ address: "10.9.9.9", family: 4, internal: false }] }),
      {
        ipv4: "10.9.9.9",
        ipv6: "",
      },
    );
    assert.deepEqual(pickMachineAddresses({}), { ipv4: "", ipv6: "" });
  });
});

describe("machineAddresses", () => {
  it("prefers configured values", () => {
    const got = machineAddresses({ ipv4: "192.0.2.1", ipv6: "2001:db8::1", hostname: "vm-1" });
    assert.deepEqual(got, { ipv4: "192.0.2.1", ipv6: "2001:db8::1", hostname: "vm-1" });
  });

  it("detects the hostname when not configured", () => {
    assert.notEqual(machineAddresses({}).hostname, "");
  });
});
