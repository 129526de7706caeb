// SPDX-License-Identifier: Apache-2.0
/**
 * `nstance-server --validate [path]` (seed 000): check a local file, or fetch and check the shard's
 * config and dynamic groups from storage. Prints `✓ …` and returns 0, or one `✗ …` line per problem
 * (file:line:column and JSON path where known) on stderr and returns 1.
 */
import { readFile } from "node:fs/promises";
import {
  buildEffectiveConfig,
  parseDynamicGroups,
  parseStaticConfig,
  validateConfigText,
} from "../config/load-config.js";
import {
  ConfigError,
  type ConfigProblem,
  errorMessage,
  formatConfigProblem,
} from "../shared/errors.js";
import { silentLogger } from "../shared/logger.js";
import { createStorage } from "../storage/create-storage.js";
import { configKey, groupsKey } from "./config-loader.js";
import type { ServerCommand } from "./server-settings.js";

type ValidateCommand = Extract<ServerCommand, { kind: "validate-file" | "validate-remote" }>;

/** Output sinks, injectable for tests. */
export interface ValidateIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: ValidateIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

function report(problems: readonly ConfigProblem[], what: string, io: ValidateIo): number {
  if (problems.length === 0) {
    io.out(`✓ ${what} is valid\n`);
    return 0;
  }
  for (const p of problems) io.err(`✗ ${formatConfigProblem(p)}\n`);
  io.err(`${problems.length} problem${problems.length === 1 ? "" : "s"} found in ${what}\n`);
  return 1;
}

/** Runs validate mode and returns the process exit code. */
export async function runValidate(
  cmd: ValidateCommand,
  env: Readonly<Record<string, string | undefined>>,
  io: ValidateIo = defaultIo,
): Promise<number> {
  if (cmd.kind === "validate-file") {
    let text: string;
    try {
      text = await readFile(cmd.path, "utf8");
    } catch (err) {
      return report(
        [{ path: "", file: cmd.path, message: `cannot read file: ${errorMessage(err)}` }],
        cmd.path,
        io,
      );
    }
    return report(validateConfigText(text, cmd.path), cmd.path, io);
  }

  let storage: Awaited<ReturnType<typeof createStorage>>;
  try {
    storage = await createStorage(
      { kind: cmd.storage, bucket: cmd.bucket, logger: silentLogger },
      env,
    );
  } catch (err) {
    return report([{ path: "", message: errorMessage(err) }], `${cmd.storage}://${cmd.bucket}`, io);
  }
  const cfgFile = `${storage.description}/${configKey(cmd.shard)}`;
  const grpFile = `${storage.description}/${groupsKey(cmd.shard)}`;
  try {
    const cfgObj = await storage.get(configKey(cmd.shard));
    if (!cfgObj)
      return report([{ path: "", file: cfgFile, message: "does not exist" }], cfgFile, io);
    const cfgText = cfgObj.body.toString("utf8");
    const problems = validateConfigText(cfgText, cfgFile);
    if (problems.length > 0) return report(problems, cfgFile, io);
    const grpObj = await storage.get(groupsKey(cmd.shard));
    const grpText = grpObj ? grpObj.body.toString("utf8") : "{}";
    const config = parseStaticConfig(cfgText, cfgFile);
    if (config.shard.id !== cmd.shard) {
      return report(
        [
          {
            path: "shard.id",
            file: cfgFile,
            message: `is "${config.shard.id}" but --shard is "${cmd.shard}"`,
          },
        ],
        cfgFile,
        io,
      );
    }
    buildEffectiveConfig(config, parseDynamicGroups(grpText, grpFile), {
      groupsFile: grpFile,
      groupsText: grpText,
    });
    return report([], `${cfgFile} and ${grpFile}`, io);
  } catch (err) {
    if (err instanceof ConfigError) return report(err.problems, cfgFile, io);
    return report([{ path: "", message: errorMessage(err) }], cfgFile, io);
  }
}
