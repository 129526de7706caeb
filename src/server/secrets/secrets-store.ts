// SPDX-License-Identifier: Apache-2.0
/**
 * The cluster secrets store: custom secrets that template files of kind `secret` reference and
 * that operators manage with PutSecret / ListSecrets / DeleteSecret. The `object-storage` provider
 * keeps each secret as an AES-256-GCM blob (`12-byte nonce ‖ ciphertext ‖ tag`, SecretBox) under
 * `cluster/secret/<name>`; `memory` keeps them in the process (tests). Values never appear in logs
 * or error messages; reserved names (the CA key, the nonce key) are refused on every operation.
 */
import { DEFAULT_SECRETS_PREFIX } from "../../config/config-schema.js";
import { DEFAULT_CLUSTER_PREFIX } from "../../pki/cluster-identity.js";
import { SecretBox } from "../../pki/secret-box.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { checkSecretName, secretNameProblem } from "./secret-name.js";

/** Cluster key prefix plus the config's default secrets prefix: `cluster/` + `secret/`. */
export const DEFAULT_SECRETS_KEY_PREFIX = DEFAULT_CLUSTER_PREFIX + DEFAULT_SECRETS_PREFIX;

/** Reads and writes named secrets. */
export interface SecretsStore {
  /** The secret's value, or `undefined` when it does not exist. */
  get(name: string, signal?: AbortSignal): Promise<Buffer | undefined>;
  /** Creates or replaces a secret. */
  put(name: string, value: Buffer | string, signal?: AbortSignal): Promise<void>;
  /** Names of the stored secrets, sorted; reserved names are left out. */
  list(signal?: AbortSignal): Promise<string[]>;
  /** Deletes a secret; deleting a missing one succeeds. */
  delete(name: string, signal?: AbortSignal): Promise<void>;
}

/** Options for {@link ObjectStorageSecretsStore}. */
export interface ObjectStorageSecretsStoreOptions {
  /** The bucket (not scoped to a shard). */
  storage: ObjectStorage;
  /** The 32-byte cluster secrets key; encrypts every new value. */
  encryptionKey: Buffer;
  /** Older keys that still decrypt (key rotation). */
  decryptOnlyKeys?: readonly Buffer[];
  /** Defaults to {@link DEFAULT_SECRETS_KEY_PREFIX}. */
  prefix?: string;
  logger: Logger;
}

/** Secrets as encrypted objects in the cluster's bucket. */
export class ObjectStorageSecretsStore implements SecretsStore {
  readonly #storage: ObjectStorage;
  readonly #box: SecretBox;
  readonly #prefix: string;
  readonly #logger: Logger;

  constructor(opts: ObjectStorageSecretsStoreOptions) {
    if (!opts.storage) throw new TypeError("storage is required");
    if (!opts.encryptionKey) throw new TypeError("encryptionKey is required");
    this.#storage = opts.storage;
    this.#box = new SecretBox({ key: opts.encryptionKey, decryptOnlyKeys: opts.decryptOnlyKeys });
    this.#prefix = opts.prefix ?? DEFAULT_SECRETS_KEY_PREFIX;
    this.#logger = opts.logger;
  }

  /**
   * The decrypted value, or `undefined`. Throws NstanceError `internal` when no configured key
   * decrypts the object (wrong key or tampering); the message names the secret, never the value.
   */
  async get(name: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    checkSecretName(name);
    const obj = await this.#storage.get(this.#prefix + name, signal);
    if (!obj) return undefined;
    try {
      return this.#box.decrypt(obj.body);
    } catch (err) {
      throw new NstanceError("internal", `cannot decrypt secret ${name}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
  }

  async put(name: string, value: Buffer | string, signal?: AbortSignal): Promise<void> {
    checkSecretName(name);
    await this.#storage.put(this.#prefix + name, this.#box.encrypt(value), {
      contentType: "application/octet-stream",
      signal,
    });
    this.#logger.info("Secret stored", { secret_name: name });
  }

  async list(signal?: AbortSignal): Promise<string[]> {
    const objects = await this.#storage.list(this.#prefix, signal);
    return objects
      .map((o) => o.key.slice(this.#prefix.length))
      .filter((name) => secretNameProblem(name) === undefined)
      .sort();
  }

  async delete(name: string, signal?: AbortSignal): Promise<void> {
    checkSecretName(name);
    await this.#storage.delete(this.#prefix + name, signal);
    this.#logger.info("Secret deleted", { secret_name: name });
  }
}

/** Secrets kept in memory: the `memory` provider, for tests and throwaway dev clusters. */
export class MemorySecretsStore implements SecretsStore {
  readonly #values = new Map<string, Buffer>();

  async get(name: string): Promise<Buffer | undefined> {
    checkSecretName(name);
    const v = this.#values.get(name);
    return v && Buffer.from(v);
  }

  async put(name: string, value: Buffer | string): Promise<void> {
    checkSecretName(name);
    this.#values.set(name, Buffer.from(value));
  }

  async list(): Promise<string[]> {
    return [...this.#values.keys()].sort();
  }

  async delete(name: string): Promise<void> {
    checkSecretName(name);
    this.#values.delete(name);
  }
}

/** What {@link createSecretsStore} needs besides the config. */
export interface CreateSecretsStoreOptions {
  storage: ObjectStorage;
  /** The loaded cluster secrets key (`cluster.secrets.encryption_key`). */
  encryptionKey: Buffer | undefined;
  logger: Logger;
}

/**
 * The store named by `cluster.secrets` (`provider`, `prefix` relative to `cluster/`). Throws
 * NstanceError `invalid_argument` for `object-storage` without an encryption key: secrets are
 * never written in plaintext.
 */
export function createSecretsStore(
  config: { readonly provider: "object-storage" | "memory"; readonly prefix: string },
  opts: CreateSecretsStoreOptions,
): SecretsStore {
  switch (config.provider) {
    case "memory":
      return new MemorySecretsStore();
    case "object-storage": {
      if (!opts.encryptionKey) {
        throw new NstanceError(
          "invalid_argument",
          "cluster.secrets.encryption_key is required for the object-storage secrets provider",
        );
      }
      return new ObjectStorageSecretsStore({
        storage: opts.storage,
        encryptionKey: opts.encryptionKey,
        prefix: DEFAULT_CLUSTER_PREFIX + config.prefix,
        logger: opts.logger,
      });
    }
  }
}
