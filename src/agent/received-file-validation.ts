// SPDX-License-Identifier: Apache-2.0
/**
 * Validation of files the server pushes, by extension: `.crt`, `.key`, `.pub`, `.json`, `.env`;
 * any other extension is plain content and always valid. Reasons never quote file content, since
 * received files hold secrets and private keys.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { extname } from "node:path";
import { checkBaseName } from "./base-name.js";

/** Marker file recording when the last patch completed (unix ms); never a patch target. */
export const WRITE_FILES_LAST = "write-files.last";
/** Subdirectory of the recv dir holding one reason file per rejected file. */
export const ERRORS_DIR = "errors";

/** Environment variable name accepted in `.env` files. */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A PEM block: label and body. */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** Returns why `name` may not be written into the recv dir, or undefined when it may. */
export function checkReceivedFileName(name: string): string | undefined {
  const problem = checkBaseName(name);
  if (problem) return problem;
  if (name === WRITE_FILES_LAST) return `${WRITE_FILES_LAST} is reserved`;
  if (name === ERRORS_DIR) return `${ERRORS_DIR} is reserved`;
  return undefined;
}

/** Returns why `content` is not valid for a file named `name` (judged by extension), or undefined. */
export function checkReceivedFileContent(name: string, content: Uint8Array): string | undefined {
  const ext = extname(name).toLowerCase();
  if (![".crt", ".key", ".pub", ".json", ".env"].includes(ext)) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(content);
  } catch {
    return "content is not valid UTF-8";
  }
  switch (ext) {
    case ".crt":
      return checkCertificates(text);
    case ".key":
      return checkPrivateKey(text);
    case ".pub":
      return checkPublicKey(text);
    case ".json":
      return checkJson(text);
    default:
      return checkEnv(text);
  }
}

/** PEM blocks of `text`, or a reason when a BEGIN line has no matching END line. */
function pemBlocks(text: string): Array<{ label: string; pem: string }> | string {
  const blocks = [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, pem: m[0] }));
  const begins = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begins !== blocks.length) return "malformed PEM: a BEGIN line has no matching END line";
  return blocks;
}

function checkCertificates(text: string): string | undefined {
  const blocks = pemBlocks(text);
  if (typeof blocks === "string") return `invalid PEM certificate: ${blocks}`;
  if (blocks.length === 0) return "invalid PEM certificate: no CERTIFICATE block";
  for (const [i, b] of blocks.entries()) {
    if (b.label !== "CERTIFICATE") return `invalid PEM certificate: block ${i + 1} is ${b.label}`;
    try {
      new X509Certificate(b.pem);
    } catch {
      return `invalid PEM certificate: block ${i + 1} does not parse`;
    }
  }
  return undefined;
}

function checkPrivateKey(text: string): string | undefined {
  const blocks = pemBlocks(text);
  if (typeof blocks === "string") return `invalid PEM private key: ${blocks}`;
  const keys = blocks.filter((b) => b.label.endsWith("PRIVATE KEY"));
  if (keys.length !== 1) {
    return `invalid PEM private key: want one PRIVATE KEY block, found ${keys.length}`;
  }
  if (keys[0]!.label === "ENCRYPTED PRIVATE KEY")
    return "invalid PEM private key: key is encrypted";
  try {
    createPrivateKey(keys[0]!.pem);
  } catch {
    // The parser's message is dropped on purpose: it must never echo key material.
    return "invalid PEM private key: does not parse";
  }
  return undefined;
}

function checkPublicKey(text: string): string | undefined {
  const blocks = pemBlocks(text);
  if (typeof blocks === "string") return `invalid PEM public key: ${blocks}`;
  const keys = blocks.filter((b) => b.label === "PUBLIC KEY" || b.label === "RSA PUBLIC KEY");
  // createPublicKey also accepts private keys and certificates; insist on a public key block.
  if (keys.length !== 1 || blocks.length !== 1) {
    return "invalid PEM public key: want exactly one PUBLIC KEY block";
  }
  try {
    createPublicKey(keys[0]!.pem);
  } catch {
    return "invalid PEM public key: does not parse";
  }
  return undefined;
}

function checkJson(text: string): string | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (err) {
    // SyntaxError messages name a position, not content beyond a token; keep only the position.
    const at = /position (\d+)/.exec(String(err));
    return `invalid JSON${at ? ` at position ${at[1]}` : ""}`;
  }
}

function checkEnv(text: string): string | undefined {
  const lines = text.split("\n");
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) return `invalid env file: line ${i + 1} is not KEY=value`;
    if (!ENV_KEY.test(line.slice(0, eq))) {
      return `invalid env file: line ${i + 1} has an invalid variable name`;
    }
  }
  return undefined;
}
