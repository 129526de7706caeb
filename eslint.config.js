// SPDX-License-Identifier: Apache-2.0
// A thin, type-aware pass for what Biome cannot check: promises, exhaustiveness, import direction.
import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

const zone = (target, from, message) => ({ target, from, message });

export default tseslint.config(
  {
    ignores: [
      "node_modules/**",
      "dist/**",
      "src/protocol/gen/**",
      "cache/**",
      ".nstance/**",
      "**/*.js",
      "**/*.mjs",
    ],
  },
  {
    files: ["**/*.ts"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@typescript-eslint": tseslint.plugin, "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "it", "suite", "test"] },
          ],
        },
      ],
      "@typescript-eslint/no-misused-promises": [
        "error",
        { checksVoidReturn: { arguments: false } },
      ],
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/switch-exhaustiveness-check": [
        "error",
        { considerDefaultExhaustiveForUnions: true },
      ],
      "@typescript-eslint/only-throw-error": "error",
      "import-x/no-cycle": ["error", { maxDepth: 8 }],
      "import-x/no-restricted-paths": [
        "error",
        {
          zones: [
            zone("./src/shared", "./src", "shared imports nothing local"),
            zone("./src/protocol", "./src/!(protocol|shared)/**", "protocol imports only shared"),
            zone(
              "./src/agent",
              "./src/!(agent|shared|protocol)/**",
              "the agent runs on every VM: it imports no server code",
            ),
            zone(
              "./src/config",
              "./src/!(config|shared|protocol)/**",
              "config imports only shared and protocol",
            ),
            zone(
              "./src/storage",
              "./src/!(storage|shared|protocol)/**",
              "storage imports only shared and protocol",
            ),
            zone(
              "./src/election",
              "./src/!(election|shared|protocol|storage|pki)/**",
              "election imports shared, storage and pki",
            ),
            zone(
              "./src/pki",
              "./src/!(pki|shared|protocol|storage)/**",
              "pki imports shared, protocol and storage",
            ),
            zone("./src/db", "./src/!(db|shared|config)/**", "db imports shared and config"),
            zone(
              "./src/providers",
              "./src/!(providers|shared|protocol)/**",
              "providers import shared and protocol",
            ),
          ],
        },
      ],
    },
  },
);
