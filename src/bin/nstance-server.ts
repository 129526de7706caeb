// SPDX-License-Identifier: Apache-2.0
/** nstance-server: parse argv, run, set the exit code. */

// The AWS SDK warns about Node 20 on every start; the project pins Node 20 deliberately.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { parseServerArgs } from "../server/server-settings.js";
import { createLogger } from "../shared/logger.js";
import { VERSION } from "../shared/version.js";

const cmd = parseServerArgs(process.argv.slice(2), process.env, VERSION);
switch (cmd.kind) {
  case "exit":
    if (cmd.stdout) process.stdout.write(cmd.stdout);
    if (cmd.stderr) process.stderr.write(cmd.stderr);
    process.exitCode = cmd.code;
    break;
  case "validate-file":
  case "validate-remote":
    process.exitCode = await (await import("../server/validate-command.js")).runValidate(
      cmd,
      process.env,
    );
    break;
  case "run": {
    const s = cmd.settings;
    const logger = createLogger({
      level: s.logLevel,
      format: s.logFormat,
      base: { component: "nstance-server", version: VERSION, server_id: s.id, shard: s.shard },
    });
    const ac = new AbortController();
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.once(sig, () => {
        logger.info("Signal received, stopping", { signal: sig });
        ac.abort(new Error(sig));
      });
    }
    // The server module is loaded only now, after the signal handlers: a usage error answers at
    // once, and a SIGTERM during the load still stops the server cleanly.
    try {
      const { runServer } = await import("../server/main.js");
      if (ac.signal.aborted) break;
      await runServer(s, { logger, version: VERSION }, ac.signal);
    } catch (err) {
      logger.error("Server failed", { err });
      process.exitCode = 1;
    }
    break;
  }
}
