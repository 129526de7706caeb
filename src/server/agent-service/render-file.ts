// SPDX-License-Identifier: Apache-2.0
/**
 * Produces the content of one template file for one instance (reference §5.15): `secret` (from the
 * secrets store), `storage` (an object under the shard prefix; the key is a template), `env`
 * (`KEY=value` lines, sorted by key), `json` (string leaves rendered, other types kept, two-space
 * indented with a final newline), `string` (the rendered template), and `certificate` (issued from
 * the cluster CA for the agent's key; see issue-template-certificate.ts).
 */
import type { CertificateConfig, FileConfig, JsonValue } from "../../config/server-config.js";
import type { CertificateAuthority } from "../../pki/ca.js";
import type { IssuedCertificate } from "../../pki/issue-certificate.js";
import { NstanceError } from "../../shared/errors.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { SecretsStore } from "../secrets/secrets-store.js";
import { issueTemplateCertificate } from "./issue-template-certificate.js";
import type { PublicKeyRow } from "./public-keys-table.js";
import { renderTemplate } from "./render-template.js";
import type { TemplateData } from "./template-data.js";

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What rendering needs besides the file and the instance data. */
export interface RenderFileDeps {
  secrets: Pick<SecretsStore, "get">;
  /** The bucket; `storage` sources are read from `prefix` + the rendered key. */
  storage: Pick<ObjectStorage, "get">;
  /** Shard prefix (`shard/{shard}/`). */
  prefix: string;
  ca: CertificateAuthority;
  /** `certificates` of the config. */
  certificates: Readonly<Record<string, CertificateConfig>>;
  /** The instance's submitted public keys, by key file name. */
  publicKeys: ReadonlyMap<string, Pick<PublicKeyRow, "publicKeyPem">>;
  now: Date;
}

/** A rendered file. */
export interface RenderedFile {
  filename: string;
  content: Buffer;
  /** Set for `certificate` files. */
  certificate?: IssuedCertificate & { certificateName: string; keyFile: string };
}

function invalid(filename: string, message: string): NstanceError {
  return new NstanceError("invalid_argument", `file ${filename}: ${message}`);
}

function renderJson(value: JsonValue, data: TemplateData, name: string): JsonValue {
  if (typeof value === "string") return renderTemplate(value, data, name);
  if (Array.isArray(value)) return value.map((v, i) => renderJson(v, data, `${name}[${i}]`));
  if (value !== null && typeof value === "object") {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderJson(v, data, `${name}.${k}`);
    return out;
  }
  return value;
}

function renderEnv(template: JsonValue | undefined, data: TemplateData, filename: string): string {
  if (template === null || typeof template !== "object" || Array.isArray(template)) {
    throw invalid(filename, "an env template must be an object of strings");
  }
  const lines: string[] = [];
  for (const key of Object.keys(template).sort()) {
    const raw = template[key];
    if (!ENV_KEY.test(key))
      throw invalid(filename, `${JSON.stringify(key)} is not a variable name`);
    if (typeof raw !== "string") throw invalid(filename, `${key} must be a string`);
    const value = renderTemplate(raw, data, `${filename}:${key}`);
    if (/[\r\n]/.test(value))
      throw invalid(filename, `${key} renders to a value with a line break`);
    lines.push(`${key}=${value}\n`);
  }
  return lines.join("");
}

/**
 * Renders one file. Returns `undefined` for a certificate whose key the agent has not submitted
 * (it is requested; the certificate follows once the key arrives). Throws NstanceError
 * `invalid_argument` for a template that does not render and `not_found` for a missing secret or
 * storage object.
 */
export async function renderFile(
  filename: string,
  file: FileConfig,
  data: TemplateData,
  deps: RenderFileDeps,
  signal?: AbortSignal,
): Promise<RenderedFile | undefined> {
  switch (file.kind) {
    case "secret": {
      if (!file.source) throw invalid(filename, "a secret file needs a source");
      const value = await deps.secrets.get(file.source, signal);
      if (!value)
        throw new NstanceError(
          "not_found",
          `file ${filename}: secret ${file.source} does not exist`,
        );
      return { filename, content: value };
    }
    case "storage": {
      if (!file.source) throw invalid(filename, "a storage file needs a source");
      const key = deps.prefix + renderTemplate(file.source, data, `${filename}:source`);
      const obj = await deps.storage.get(key, signal);
      if (!obj)
        throw new NstanceError("not_found", `file ${filename}: object ${key} does not exist`);
      return { filename, content: obj.body };
    }
    case "env":
      return { filename, content: Buffer.from(renderEnv(file.template, data, filename)) };
    case "json": {
      const rendered = renderJson(file.template ?? null, data, filename);
      return { filename, content: Buffer.from(`${JSON.stringify(rendered, null, 2)}\n`) };
    }
    case "string": {
      if (typeof file.template !== "string")
        throw invalid(filename, "a string template must be a string");
      return { filename, content: Buffer.from(renderTemplate(file.template, data, filename)) };
    }
    case "certificate": {
      const templateName = file.template;
      if (typeof templateName !== "string") {
        throw invalid(filename, "a certificate file's template must name a certificate template");
      }
      const template = deps.certificates[templateName];
      if (!template) throw invalid(filename, `certificate template ${templateName} does not exist`);
      if (!file.key) throw invalid(filename, "a certificate file needs a key");
      const key = deps.publicKeys.get(file.key.name);
      if (!key) return undefined;
      const issued = await issueTemplateCertificate({
        ca: deps.ca,
        template,
        templateName,
        data,
        publicKeyPem: key.publicKeyPem,
        now: deps.now,
      });
      return {
        filename,
        content: Buffer.from(issued.certificatePem),
        certificate: { ...issued, certificateName: templateName, keyFile: file.key.name },
      };
    }
  }
}
