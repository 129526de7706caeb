#!/usr/bin/env node
// Launcher: runs the TypeScript entry point through tsx, so no build step is needed.
import { register } from "tsx/esm/api";

register();
await import("../src/bin/nstance-admin.ts");
