// SPDX-License-Identifier: Apache-2.0
/** The files generated from the config schema, by repository path (written by scripts/gen-schema.ts). */
import { toMarkdownReference } from "./config-docs.js";
import { CONFIG_SCHEMA_FILE, GROUPS_SCHEMA_FILE } from "./config-schema.js";
import { formatJsonSchema, toGroupsJsonSchema, toJsonSchema } from "./json-schema.js";

/** Path of the generated configuration reference. */
export const CONFIG_DOCS_FILE = "docs/configuration.md";

/** Repository path → content of every generated config artefact. */
export function generatedConfigFiles(): Record<string, string> {
  return {
    [CONFIG_SCHEMA_FILE]: formatJsonSchema(toJsonSchema()),
    [GROUPS_SCHEMA_FILE]: formatJsonSchema(toGroupsJsonSchema()),
    [CONFIG_DOCS_FILE]: toMarkdownReference(),
  };
}
