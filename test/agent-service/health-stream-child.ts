// SPDX-License-Identifier: Apache-2.0
/**
 * A stand-in agent process for the crash test: opens a health stream with the certificate in its
 * environment, sends one report, prints `sent`, and then waits to be killed.
 */

import { grpcChannelCredentials } from "../../src/pki/tls-options.js";
import { AgentServiceClient } from "../../src/protocol/gen/nstance/v1/agent.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};

const client = new AgentServiceClient(
  env("AGENT_ADDR"),
  grpcChannelCredentials({
    caCertPem: env("AGENT_CA_PEM"),
    certPem: env("AGENT_CERT_PEM"),
    keyPem: env("AGENT_KEY_PEM"),
  }),
);
const call = client.submitHealthReport((err) => {
  process.stdout.write(`ended ${err?.code ?? 0}\n`);
});
const now = new Date();
call.write(
  {
    version: "1.0.0",
    instanceId: env("AGENT_INSTANCE_ID"),
    count: 1,
    timestamp: now,
    started: now,
    windowStart: now,
    windowEnd: now,
    uptime: 1,
    oneMinute: undefined,
    fiveMinutes: undefined,
    fifteenMinutes: undefined,
    files: {},
    terminationNotice: undefined,
    configHash: "",
    patchError: "",
  },
  () => process.stdout.write("sent\n"),
);
setInterval(() => {}, 60_000);
