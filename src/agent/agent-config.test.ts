// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../shared/errors.js";
import { checkHostPort, loadAgentConfig } from "./agent-config.js";

const base = {
  NSTANCE_SERVER_REGISTRATION_ADDR: "10.0.0.1:8992",
  NSTANCE_SERVER_AGENT_ADDR: "10.0.0.1:8994",
};

function problemsOf(env: Record<string, string>): Array<{ path: string; message: string }> {
  try {
    loadAgentConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `want ConfigError, got ${String(err)}`);
    return err.problems.map((p) => ({ path: p.path, message: p.message }));
  }
  assert.fail("expected loadAgentConfig to throw");
}

describe("loadAgentConfig", () => {
  it("applies the reference defaults", () => {
    const c = loadAgentConfig(base);
    assert.equal(c.identityDir, "/opt/nstance-agent/identity");
    assert.equal(c.keysDir, "/opt/nstance-agent/keys");
    assert.equal(c.recvDir, "/opt/nstance-agent/recv");
    assert.equal(c.identityFileMode, 0o600);
    assert.equal(c.keysFileMode, 0o640);
    assert.equal(c.recvFileMode, 0o640);
    assert.equal(c.metricsIntervalMs, 60_000);
    assert.equal(c.spotPollIntervalMs, 2_000);
    assert.equal(c.provider, undefined);
    assert.equal(c.metadataUrl, undefined);
    assert.equal(c.healthAddr, undefined);
    assert.equal(c.instanceId, undefined);
    assert.equal(c.diskPath, "/");
    assert.equal(c.debug, false);
    assert.equal(c.certRenewBeforeMs, undefined, "a third of the certificate's lifetime");
  });

  it("reads every variable", () => {
    const c = loadAgentConfig({
      ...base,
      NSTANCE_IDENTITY_DIR: "/tmp/a/identity/",
      NSTANCE_KEYS_DIR: "/tmp/a/keys",
      NSTANCE_RECV_DIR: "relative/recv",
      NSTANCE_IDENTITY_MODE: "0400",
      NSTANCE_KEYS_MODE: "600",
      NSTANCE_RECV_MODE: "0644",
      NSTANCE_INSTANCE_ID: "knc06bgm7733st2576nx5jht4ecjw",
      NSTANCE_INSTANCE_HOSTNAME: "web-1.internal",
      NSTANCE_INSTANCE_IPV4: "10.1.2.3",
      NSTANCE_INSTANCE_IPV6: "fd00::1",
      NSTANCE_METRICS_INTERVAL: "1s",
      NSTANCE_PROVIDER: "GCP",
      NSTANCE_METADATA_URL: "http://127.0.0.1:4567/",
      NSTANCE_SPOT_POLL_INTERVAL: "250ms",
      NSTANCE_HEALTH_ADDR: "127.0.0.1:0",
      NSTANCE_METRICS_DISK_PATH: "/var",
      NSTANCE_DEBUG: "1",
      NSTANCE_CERT_RENEW_BEFORE: "8h30m",
    });
    assert.equal(c.identityDir, "/tmp/a/identity");
    assert.equal(c.recvDir, `${process.cwd()}/relative/recv`);
    assert.equal(c.identityFileMode, 0o400);
    assert.equal(c.keysFileMode, 0o600);
    assert.equal(c.recvFileMode, 0o644);
    assert.equal(c.instanceId, "knc06bgm7733st2576nx5jht4ecjw");
    assert.equal(c.hostname, "web-1.internal");
    assert.equal(c.ipv4, "10.1.2.3");
    assert.equal(c.ipv6, "fd00::1");
    assert.equal(c.metricsIntervalMs, 1000);
    assert.equal(c.provider, "google");
    assert.equal(c.metadataUrl, "http://127.0.0.1:4567");
    assert.equal(c.spotPollIntervalMs, 250);
    assert.equal(c.healthAddr, "127.0.0.1:0");
    assert.equal(c.diskPath, "/var");
    assert.equal(c.debug, true);
    assert.equal(c.certRenewBeforeMs, 8.5 * 3_600_000);
  });

  it("accepts NSTANCE_REPORT_INTERVAL as an alias; NSTANCE_METRICS_INTERVAL wins", () => {
    assert.equal(
      loadAgentConfig({ ...base, NSTANCE_REPORT_INTERVAL: "5s" }).metricsIntervalMs,
      5000,
    );
    assert.equal(
      loadAgentConfig({ ...base, NSTANCE_REPORT_INTERVAL: "5s", NSTANCE_METRICS_INTERVAL: "2m" })
        .metricsIntervalMs,
      120_000,
    );
    assert.equal(loadAgentConfig({ ...base, NSTANCE_METRICS_INTERVAL: "0" }).metricsIntervalMs, 0);
  });

  it("treats empty variables as unset", () => {
    const c = loadAgentConfig({ ...base, NSTANCE_RECV_DIR: "", NSTANCE_PROVIDER: "  " });
    assert.equal(c.recvDir, "/opt/nstance-agent/recv");
    assert.equal(c.provider, undefined);
  });

  const invalid: Array<{ env: Record<string, string>; path: string; re: RegExp }> = [
    {
      env: { NSTANCE_METRICS_INTERVAL: "60" },
      path: "NSTANCE_METRICS_INTERVAL",
      re: /invalid duration "60"/,
    },
    { env: { NSTANCE_REPORT_INTERVAL: "1d" }, path: "NSTANCE_REPORT_INTERVAL", re: /Go duration/ },
    {
      env: { NSTANCE_SPOT_POLL_INTERVAL: "-2s" },
      path: "NSTANCE_SPOT_POLL_INTERVAL",
      re: /negative/,
    },
    {
      env: { NSTANCE_KEYS_MODE: "0999" },
      path: "NSTANCE_KEYS_MODE",
      re: /invalid file mode "0999"/,
    },
    { env: { NSTANCE_RECV_MODE: "rw-r-----" }, path: "NSTANCE_RECV_MODE", re: /octal/ },
    {
      env: { NSTANCE_PROVIDER: "azure" },
      path: "NSTANCE_PROVIDER",
      re: /valid: aws, google, none/,
    },
    { env: { NSTANCE_METADATA_URL: "ftp://x" }, path: "NSTANCE_METADATA_URL", re: /invalid URL/ },
    { env: { NSTANCE_HEALTH_ADDR: "8080" }, path: "NSTANCE_HEALTH_ADDR", re: /want host:port/ },
    { env: { NSTANCE_HEALTH_ADDR: "::1:80" }, path: "NSTANCE_HEALTH_ADDR", re: /brackets/ },
    {
      env: { NSTANCE_SERVER_AGENT_ADDR: "h:70000" },
      path: "NSTANCE_SERVER_AGENT_ADDR",
      re: /65535/,
    },
    {
      env: { NSTANCE_SERVER_AGENT_ADDR: "h:0" },
      path: "NSTANCE_SERVER_AGENT_ADDR",
      re: /not be 0/,
    },
    { env: { NSTANCE_INSTANCE_ID: "test-1" }, path: "NSTANCE_INSTANCE_ID", re: /Crockford/ },
    {
      env: { NSTANCE_INSTANCE_HOSTNAME: "bad_host!" },
      path: "NSTANCE_INSTANCE_HOSTNAME",
      re: /invalid hostname/,
    },
    { env: { NSTANCE_INSTANCE_IPV4: "fd00::1" }, path: "NSTANCE_INSTANCE_IPV4", re: /not an IPv4/ },
    { env: { NSTANCE_DEBUG: "yes" }, path: "NSTANCE_DEBUG", re: /invalid boolean/ },
    {
      env: { NSTANCE_CERT_RENEW_BEFORE: "8" },
      path: "NSTANCE_CERT_RENEW_BEFORE",
      re: /^invalid duration "8": want a Go duration such as 60s, 1m30s or 500ms$/,
    },
    {
      env: { NSTANCE_CERT_RENEW_BEFORE: "1d" },
      path: "NSTANCE_CERT_RENEW_BEFORE",
      re: /invalid duration "1d"/,
    },
    {
      env: { NSTANCE_CERT_RENEW_BEFORE: "-1h" },
      path: "NSTANCE_CERT_RENEW_BEFORE",
      re: /^must not be negative \(got "-1h"\)$/,
    },
    {
      env: { NSTANCE_CERT_RENEW_BEFORE: "0s" },
      path: "NSTANCE_CERT_RENEW_BEFORE",
      re: /^must be greater than 0 \(got "0s"\)$/,
    },
  ];
  for (const tc of invalid) {
    it(`names the variable: ${tc.path}=${Object.values(tc.env)[0]}`, () => {
      const problems = problemsOf({ ...base, ...tc.env });
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]!.path, tc.path);
      assert.match(problems[0]!.message, tc.re);
    });
  }

  it("accepts comma-separated server address lists, in order", () => {
    const c = loadAgentConfig({
      NSTANCE_SERVER_REGISTRATION_ADDR: "10.0.0.1:8992, 10.0.0.2:8992,",
      NSTANCE_SERVER_AGENT_ADDR: "[fd00::1]:8994",
    });
    assert.deepEqual(c.registrationAddrs, ["10.0.0.1:8992", "10.0.0.2:8992"]);
    assert.equal(c.registrationAddr, "10.0.0.1:8992");
    assert.deepEqual(c.agentAddrs, ["[fd00::1]:8994"]);
    assert.equal(c.agentAddr, "[fd00::1]:8994");
  });

  it("names each bad address in a list", () => {
    const problems = problemsOf({ ...base, NSTANCE_SERVER_REGISTRATION_ADDR: "a:1,b,c:0" });
    assert.deepEqual(
      problems.map((p) => p.message),
      ['invalid address "b": want host:port', 'invalid address "c:0": port must not be 0'],
    );
  });

  it("requires both server addresses and reports every problem at once", () => {
    try {
      loadAgentConfig({ NSTANCE_KEYS_MODE: "x" });
      assert.fail("expected a ConfigError");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        err.problems.map((p) => p.path),
        ["NSTANCE_KEYS_MODE", "NSTANCE_SERVER_REGISTRATION_ADDR", "NSTANCE_SERVER_AGENT_ADDR"],
      );
      assert.match(err.message, /^3 configuration problems:/);
      assert.match(err.message, /NSTANCE_SERVER_AGENT_ADDR: is required \(host:port\)/);
    }
  });
});

describe("checkHostPort", () => {
  const cases: Array<[string, boolean]> = [
    ["localhost:8992", true],
    ["10.0.0.1:1", true],
    ["[::1]:8994", true],
    [":8990", true],
    ["nstance-server.internal:443", true],
    ["host", false],
    ["host:", false],
    ["host:http", false],
    ["[::1:80", false],
    ["[nothost]:80", false],
    ["bad host:80", false],
  ];
  for (const [addr, ok] of cases) {
    it(`${addr} → ${ok ? "valid" : "invalid"}`, () => {
      assert.equal(checkHostPort(addr) === undefined, ok, checkHostPort(addr));
    });
  }
});
