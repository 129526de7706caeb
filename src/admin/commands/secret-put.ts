// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-admin secret put <name> --value-file <path|->`: creates or replaces a cluster secret
 * (for template files of kind `secret`). The value comes from a file or standard input, never from
 * the command line: argv is visible to every user through `ps` and lands in shell history. The
 * value is never printed; the output names the secret and its size.
 */
import { readFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import { errorMessage } from "../../shared/errors.js";
import type { AdminIo, CommandContext } from "../command-context.js";
import { renderTable } from "../output.js";
import { UsageError } from "../usage-error.js";
import { runShardCommand } from "./shard-command.js";

/** The `--value-file` argument that means standard input. */
export const STDIN_PATH = "-";

/** Why `--value` is refused (printed as the usage error). */
export const VALUE_FLAG_REFUSED =
  "--value is not supported: command lines are visible to other users (ps) and kept in shell history; " +
  "use --value-file <path>, or --value-file - to read the value from stdin";

/**
 * Reads the secret value from `path` (`-` = stdin, as UTF-8 text). Throws UsageError for an
 * unreadable file, missing stdin or an empty value. Messages never quote the content.
 */
export async function readSecretValue(path: string, io: AdminIo): Promise<Buffer> {
  let value: Buffer;
  if (path === STDIN_PATH) {
    if (!io.readStdin) throw new UsageError("--value-file -: there is no standard input to read");
    value = Buffer.from(await io.readStdin(), "utf8");
  } else {
    try {
      value = await readFile(path);
    } catch (err) {
      throw new UsageError(`--value-file ${path}: ${errorMessage(err)}`, { cause: err });
    }
  }
  if (value.length === 0) {
    throw new UsageError(
      `--value-file ${path}: the value is empty (a secret needs at least one byte)`,
    );
  }
  return value;
}

/** Registers `secret put` under `secret`. */
export function registerSecretPut(secret: Command, ctx: CommandContext): void {
  secret
    .command("put")
    .description(
      "Create or replace a cluster secret; the value is read from a file or stdin and never printed",
    )
    .argument("<name>", "secret name: letters, digits, '.', '_', '-'; not starting with '.'")
    .option(
      "--value-file <path>",
      `file holding the value, stored byte for byte; ${STDIN_PATH} reads stdin (as text)`,
    )
    .addOption(new Option("--value <value>", "refused: see --value-file").hideHelp())
    .action(async (name: string, flags: { valueFile?: string; value?: string }, cmd: Command) => {
      if (flags.value !== undefined) throw new UsageError(VALUE_FLAG_REFUSED);
      if (flags.valueFile === undefined) {
        throw new UsageError(
          `give the value with --value-file <path>, or --value-file ${STDIN_PATH} to read stdin`,
        );
      }
      const value = await readSecretValue(flags.valueFile, ctx.io);
      await runShardCommand(cmd, ctx, {
        call: (svc, sel, signal) => svc.putSecret(sel, name, value, signal),
        jsonKey: "secret",
        toJson: (v) => ({ name: v.name, size: v.sizeBytes, stored: true }),
        human: (ok) =>
          renderTable(
            ["SHARD", "SECRET", "SIZE", "RESULT"],
            ok.map(({ shard, value: v }) => [shard, v.name, String(v.sizeBytes), "stored"]),
          ),
      });
    });
}
