// SPDX-License-Identifier: Apache-2.0
/**
 * Key generation requests (seed 003 step 3): the keys an instance's `certificate` files need
 * (`key.name` minus `.pub`) that its agent has not submitted are sent on its ReceiveKeyRequests
 * stream when the stream opens, and again after reports while they are still missing — at most
 * once per `resendIntervalMs` for the same set, since the agent may be generating them.
 */
import type { EffectiveGroup } from "../../config/server-config.js";
import type { KeyGenerationRequest } from "../../protocol/gen/nstance/v1/agent.js";
import type { Logger } from "../../shared/logger.js";
import type { ConfigStore } from "../config-store.js";
import type { AgentKeyCache } from "./agent-key-cache.js";
import type { InstanceRef } from "./file-delivery.js";
import type { InstanceStreams } from "./instance-streams.js";
import { keyNameOf } from "./submitted-public-key.js";

/** The same missing keys are requested again after this long. */
export const DEFAULT_KEY_REQUEST_RESEND_MS = 30_000;

/** Key names (without `.pub`) the group's certificate files need and `submitted` lacks, sorted. */
export function missingKeyNames(
  group: Pick<EffectiveGroup, "files">,
  submitted: { has(keyFile: string): boolean },
): string[] {
  const missing = new Set<string>();
  for (const f of Object.values(group.files)) {
    if (f.kind === "certificate" && f.key?.source === "agent" && !submitted.has(f.key.name)) {
      missing.add(keyNameOf(f.key.name));
    }
  }
  return [...missing].sort();
}

/** Options for {@link KeyRequests}. */
export interface KeyRequestsOptions {
  configStore: Pick<ConfigStore, "group">;
  keys: AgentKeyCache;
  streams: InstanceStreams<KeyGenerationRequest>;
  logger: Logger;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Defaults to {@link DEFAULT_KEY_REQUEST_RESEND_MS}. */
  resendIntervalMs?: number;
}

/** Sends key generation requests; see the file comment. */
export class KeyRequests {
  readonly #opts: KeyRequestsOptions;
  readonly #now: () => number;
  readonly #resendMs: number;
  readonly #lastSent = new Map<string, { names: string; at: number }>();

  constructor(opts: KeyRequestsOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#resendMs = opts.resendIntervalMs ?? DEFAULT_KEY_REQUEST_RESEND_MS;
  }

  #missing(ref: InstanceRef): string[] {
    const group = this.#opts.configStore.group(ref.tenant, ref.groupKey);
    return group ? missingKeyNames(group, this.#opts.keys.keys(ref.id)) : [];
  }

  #send(ref: InstanceRef, names: string[]): void {
    if (!this.#opts.streams.send(ref.id, [{ keyNames: names }])) return;
    this.#lastSent.set(ref.id, { names: names.join("\n"), at: this.#now() });
    this.#opts.logger.info("Key generation requested", { instance_id: ref.id, keys: names });
  }

  /** A ReceiveKeyRequests stream opened: request every missing key now. */
  onStreamOpened(ref: InstanceRef): void {
    this.#lastSent.delete(ref.id);
    const names = this.#missing(ref);
    if (names.length > 0) this.#send(ref, names);
  }

  /** After a report: request keys still missing, unless the same set was requested recently. */
  onReport(ref: InstanceRef): void {
    if (!this.#opts.streams.has(ref.id)) return;
    const names = this.#missing(ref);
    if (names.length === 0) {
      this.#lastSent.delete(ref.id);
      return;
    }
    const last = this.#lastSent.get(ref.id);
    if (last && last.names === names.join("\n") && this.#now() - last.at < this.#resendMs) return;
    this.#send(ref, names);
  }

  /** Forgets an instance (its agent disconnected). */
  forget(instanceId: string): void {
    this.#lastSent.delete(instanceId);
  }
}
