// SPDX-License-Identifier: Apache-2.0
/** nstance-agent: read NSTANCE_* settings, run the agent, stop gracefully on SIGTERM/SIGINT. */

import { Agent } from "../agent/agent.js";
import { type AgentConfig, loadAgentConfig } from "../agent/agent-config.js";
import { ConfigError, formatConfigProblem } from "../shared/errors.js";
import { createLogger } from "../shared/logger.js";
import { VERSION } from "../shared/version.js";

/** Longest graceful shutdown before the process exits anyway. */
const DEFAULT_STOP_TIMEOUT_MS = 15_000;

const USAGE = `Usage: nstance-agent [--instance-id=<id>] [--version] [--help]

Runs the nstance agent. Settings come from NSTANCE_* environment variables
(NSTANCE_SERVER_REGISTRATION_ADDR and NSTANCE_SERVER_AGENT_ADDR are required).
--instance-id is accepted and ignored: it only marks the process for the local provider.
`;

for (const arg of process.argv.slice(2)) {
  if (arg.startsWith("--instance-id=")) continue;
  if (arg === "--version") {
    process.stdout.write(`nstance-agent ${VERSION}\n`);
    process.exit(0);
  }
  if (arg === "--help" || arg === "-h") {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  process.stderr.write(`nstance-agent: unknown argument "${arg}"\n\n${USAGE}`);
  process.exit(2);
}

let config: AgentConfig;
try {
  config = loadAgentConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(
    `nstance-agent: invalid configuration:\n${err.problems.map((p) => `  ${formatConfigProblem(p)}`).join("\n")}\n`,
  );
  process.exit(2);
}

const logger = createLogger({
  level: config.debug ? "debug" : "info",
  base: { component: "nstance-agent", version: VERSION },
});
const agent = new Agent({ config, logger, version: VERSION });

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    logger.info("Signal received, stopping", { signal: sig });
    // A hung shutdown must not keep the VM's agent from being restarted.
    setTimeout(() => {
      logger.error("Graceful stop timed out; exiting", { timeout_ms: DEFAULT_STOP_TIMEOUT_MS });
      process.exit(1);
    }, DEFAULT_STOP_TIMEOUT_MS).unref();
    agent.stop().then(
      () => {
        process.exitCode = 0;
      },
      (err: unknown) => {
        logger.error("Agent stop failed", { err });
        process.exitCode = 1;
      },
    );
  });
}

try {
  await agent.start();
} catch (err) {
  logger.error("Agent failed to start", { err });
  process.exitCode = 1;
  await agent.stop();
}
