#!/usr/bin/env sh
# SPDX-License-Identifier: Apache-2.0
# Lints proto/ and regenerates src/protocol/gen/ (ts-proto through buf, local plugin only, so it
# works offline). Commit the generated files.
set -eu
cd "$(dirname "$0")/.."
npx buf lint
npx buf generate
