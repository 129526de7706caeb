// SPDX-License-Identifier: Apache-2.0
/**
 * The configuration module's entry points: parse and validate the static config and the dynamic
 * groups file, and merge them into the effective groups. Every problem is collected and located
 * (`file:line:column`, JSON path); errors are thrown as one ConfigError listing them all.
 */
import { ConfigError, type ConfigProblem } from "../shared/errors.js";
import { checkSchema } from "./check-schema.js";
import { compileServerConfig } from "./compile-config.js";
import { CONFIG_SCHEMA, GROUPS_SCHEMA } from "./config-schema.js";
import { mergeGroups } from "./merge-groups.js";
import { locateProblems, parseJsonc } from "./parse-jsonc.js";
import { formatPath, type PathProblem } from "./path-problem.js";
import type {
  DynamicGroups,
  EffectiveConfig,
  RawServerConfig,
  ServerConfig,
} from "./server-config.js";
import { validateServerConfig } from "./validate-config.js";

export type { EffectiveConfig, EffectiveGroup } from "./server-config.js";

/** Shown path prefix of problems in the groups file (its entries are `groups.<tenant>.<group>`). */
export const GROUPS_PATH_PREFIX = "groups";

interface Analysis<T> {
  problems: ConfigProblem[];
  value?: T;
}

function analyzeStatic(text: string, file: string): Analysis<RawServerConfig> {
  const parsed = parseJsonc(text, file);
  if (parsed.syntaxProblems.length > 0) return { problems: parsed.syntaxProblems };
  const checked = checkSchema(CONFIG_SCHEMA, parsed.doc.value);
  const raw = checked.value as RawServerConfig | undefined;
  const pathProblems: PathProblem[] = [...parsed.duplicateKeys, ...checked.problems];
  if (raw !== undefined) pathProblems.push(...validateServerConfig(raw));
  const problems = locateProblems(parsed.doc, pathProblems);
  return problems.length > 0 || raw === undefined ? { problems } : { problems, value: raw };
}

function analyzeGroups(text: string, file: string): Analysis<DynamicGroups> {
  // A missing or empty groups file means "no dynamic groups".
  const parsed = parseJsonc(text.trim() === "" ? "{}" : text, file);
  if (parsed.syntaxProblems.length > 0) return { problems: parsed.syntaxProblems };
  const checked = checkSchema(GROUPS_SCHEMA, parsed.doc.value);
  const problems = locateProblems(
    parsed.doc,
    [...parsed.duplicateKeys, ...checked.problems],
    GROUPS_PATH_PREFIX,
  );
  return problems.length > 0 ? { problems } : { problems, value: checked.value as DynamicGroups };
}

/**
 * Everything `nstance-server --validate path` reports about a static config file: syntax errors,
 * schema problems and cross-reference problems. Empty means valid.
 */
export function validateConfigText(text: string, file: string): ConfigProblem[] {
  return analyzeStatic(text, file).problems;
}

/** Parses, defaults, validates and compiles a static config; throws ConfigError with every problem. */
export function parseStaticConfig(text: string, file: string): ServerConfig {
  const { problems, value } = analyzeStatic(text, file);
  if (value === undefined) throw new ConfigError(problems);
  return compileServerConfig(value);
}

/** Parses and checks a dynamic groups file (`""` counts as `{}`); throws ConfigError. */
export function parseDynamicGroups(text: string, file: string): DynamicGroups {
  const { problems, value } = analyzeGroups(text, file);
  if (value === undefined) throw new ConfigError(problems);
  return value;
}

function mergeProblems(
  config: ServerConfig,
  dynamic: DynamicGroups,
  opts: { groupsFile?: string; groupsText?: string },
): { problems: ConfigProblem[]; effective: EffectiveConfig } {
  const { groups, problems } = mergeGroups(config, dynamic);
  const effective: EffectiveConfig = { config, dynamic, groups };
  if (problems.length === 0) return { problems: [], effective };
  const file = opts.groupsFile ?? "groups";
  if (opts.groupsText !== undefined) {
    const parsed = parseJsonc(opts.groupsText, file);
    return { problems: locateProblems(parsed.doc, problems, GROUPS_PATH_PREFIX), effective };
  }
  return {
    problems: problems.map((p) => ({
      path: formatPath(p.path, GROUPS_PATH_PREFIX),
      message: p.message,
      ...(opts.groupsFile !== undefined && { file: opts.groupsFile }),
    })),
    effective,
  };
}

/**
 * Merges static and dynamic groups into the effective groups with their hashes. Dynamic entries
 * that change a restricted field of a static group, or that refer to unknown templates, pools or
 * load balancers, are problems; pass the groups file's name and text to have them located.
 */
export function buildEffectiveConfig(
  config: ServerConfig,
  dynamic: DynamicGroups,
  opts: { groupsFile?: string; groupsText?: string } = {},
): EffectiveConfig {
  const { problems, effective } = mergeProblems(config, dynamic, opts);
  if (problems.length > 0) throw new ConfigError(problems);
  return effective;
}

/**
 * Everything wrong with a groups file against a (valid) static config: syntax, schema and merge
 * problems. Empty means valid.
 */
export function validateGroupsText(
  config: ServerConfig,
  text: string,
  file: string,
): ConfigProblem[] {
  const { problems, value } = analyzeGroups(text, file);
  if (value === undefined) return problems;
  return mergeProblems(config, value, { groupsFile: file, groupsText: text }).problems;
}
