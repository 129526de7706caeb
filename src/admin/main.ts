// SPDX-License-Identifier: Apache-2.0
/**
 * nstance-admin: the operator's command line. Cluster commands (`cluster nonce`,
 * `cluster register-operator`) work on the bucket or the Registration API; group, config and
 * secret commands call the Operator API of one shard or all shards over mutual TLS.
 * {@link runAdmin} is the whole program; `src/bin/nstance-admin.ts` only wires it to the process.
 */
import { Command, CommanderError } from "commander";
import { errorMessage } from "../shared/errors.js";
import { VERSION } from "../shared/version.js";
import type { AdminIo, CommandContext } from "./command-context.js";
import { registerClusterNonce } from "./commands/cluster-nonce.js";
import { registerClusterRegisterOperator } from "./commands/cluster-register-operator.js";
import { registerConfigRefresh } from "./commands/config-refresh.js";
import { registerConfigStatus } from "./commands/config-status.js";
import { registerGroupCreate } from "./commands/group-create.js";
import { registerGroupDelete } from "./commands/group-delete.js";
import { registerGroupList } from "./commands/group-list.js";
import { registerGroupScale } from "./commands/group-scale.js";
import { registerGroupStatus } from "./commands/group-status.js";
import { registerInstanceAck } from "./commands/instance-ack.js";
import { registerInstanceCreate } from "./commands/instance-create.js";
import { registerInstanceDelete } from "./commands/instance-delete.js";
import { registerInstanceDrains } from "./commands/instance-drains.js";
import { registerInstanceHistory } from "./commands/instance-history.js";
import { registerInstanceList } from "./commands/instance-list.js";
import { registerInstanceStatus } from "./commands/instance-status.js";
import { registerSecretDelete } from "./commands/secret-delete.js";
import { registerSecretList } from "./commands/secret-list.js";
import { registerSecretPut } from "./commands/secret-put.js";
import { EXIT_CODES, exitCodeFor } from "./exit-code.js";
import { addGlobalOptions } from "./global-options.js";
import { renderError } from "./output.js";
import { registerServe } from "./serve/serve-command.js";
import { UsageError } from "./usage-error.js";

/** The program's name in help and messages. */
export const PROGRAM_NAME = "nstance-admin";

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

function buildProgram(ctx: CommandContext): Command {
  const { io } = ctx;
  const program = new Command(PROGRAM_NAME)
    .description(
      "Operate an nstance cluster: register operators, list and change groups, refresh config, manage secrets.",
    )
    .version(VERSION, "--version", "print the version")
    .helpOption("-h, --help", "show help")
    .configureHelp({ showGlobalOptions: true })
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .hook("preAction", (_root, action) => {
      ctx.commandPath = commandPath(action);
    });
  addGlobalOptions(program);

  const cluster = program
    .command("cluster")
    .description("Cluster-wide commands that use the bucket or the Registration API");
  registerClusterNonce(cluster, ctx);
  registerClusterRegisterOperator(cluster, ctx);

  const group = program
    .command("group")
    .description("Instance groups, over the Operator API of the selected shards");
  registerGroupList(group, ctx);
  registerGroupStatus(group, ctx);
  registerGroupCreate(group, ctx);
  registerGroupScale(group, ctx);
  registerGroupDelete(group, ctx);

  const instance = program
    .command("instance")
    .description(
      "Instances, on-demand instances and drain notices, over the Operator API of the selected shards",
    );
  registerInstanceList(instance, ctx);
  registerInstanceStatus(instance, ctx);
  registerInstanceHistory(instance, ctx);
  registerInstanceCreate(instance, ctx);
  registerInstanceDelete(instance, ctx);
  registerInstanceDrains(instance, ctx);
  registerInstanceAck(instance, ctx);

  const config = program
    .command("config")
    .description("Shard configuration, over the Operator API of the selected shards");
  registerConfigStatus(config, ctx);
  registerConfigRefresh(config, ctx);

  const secret = program
    .command("secret")
    .description(
      "Cluster secrets for template files of kind secret, over the Operator API; values are never printed",
    );
  registerSecretPut(secret, ctx);
  registerSecretList(secret, ctx);
  registerSecretDelete(secret, ctx);

  registerServe(program, ctx);
  return program;
}

/**
 * Runs nstance-admin with `argv` (without node and script) and returns the exit code: 0 ok,
 * 1 operation failed, 2 usage error, 3 server or storage unreachable, 4 not found. Errors are
 * printed to `io.stderr` as one `error: …` line each.
 */
export async function runAdmin(
  argv: readonly string[],
  io: AdminIo,
  signal?: AbortSignal,
): Promise<number> {
  const ctx: CommandContext = { io, signal, exitCode: EXIT_CODES.ok, commandPath: "" };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ctx.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; commander has already printed any other problem.
      if (err.exitCode === 0) return EXIT_CODES.ok;
      if (err.code !== "commander.help") io.stderr.write(usageHint(ctx));
      return EXIT_CODES.usage;
    }
    io.stderr.write(renderError(errorMessage(err)));
    if (err instanceof UsageError) io.stderr.write(usageHint(ctx));
    return exitCodeFor(err);
  }
}

function usageHint(ctx: CommandContext): string {
  const path = ctx.commandPath ? `${PROGRAM_NAME} ${ctx.commandPath}` : PROGRAM_NAME;
  return `Run '${path} --help' for usage.\n`;
}
