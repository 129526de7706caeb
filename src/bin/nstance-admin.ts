// SPDX-License-Identifier: Apache-2.0
/** nstance-admin: wire the process to runAdmin and set the exit code. */

// The AWS SDK warns about Node 20 on every start; the project pins Node 20 deliberately.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { text } from "node:stream/consumers";
import { runAdmin } from "../admin/main.js";

// grpc-js passes an IP target as the TLS ServerName, which Node flags (DEP0123) whenever a server
// is dialled by IP. The certificate is still checked against the IP SAN; the warning would only
// clutter the output scripts read, so it alone is dropped and every other warning is printed.
const printWarning = process.listeners("warning");
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if ((warning as { code?: string }).code === "DEP0123") return;
  for (const listener of printWarning) listener(warning);
});

const ac = new AbortController();
process.once("SIGINT", () => ac.abort(new Error("SIGINT")));
process.exitCode = await runAdmin(
  process.argv.slice(2),
  {
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    readStdin: () => text(process.stdin),
  },
  ac.signal,
);
