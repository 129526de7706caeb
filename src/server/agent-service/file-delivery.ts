// SPDX-License-Identifier: Apache-2.0
/**
 * Delivers template files to agents over their ReceiveFiles stream, asynchronously after each
 * report (seed 003 step 2). What to push is {@link planFileDelivery}'s decision; this class renders
 * the files (secrets, storage objects, templates, certificates from the cluster CA), writes the
 * certlog, and queues the patch: N file messages, then the commit message carrying the group's
 * runtime hash.
 *
 * One delivery runs per instance at a time (a report arriving meanwhile re-runs it afterwards with
 * the newest report), a bounded number across instances, and a patch already pushed for the same
 * hash is not pushed again for `redeliveryIntervalMs` — the agent may simply not have reported it
 * applied yet. If any file of a whole-set patch cannot be rendered (missing secret or object, bad
 * template), nothing is sent: committing the new hash with a stale file would hide the drift. A
 * partial patch carries whatever could be rendered.
 */
import type { EffectiveGroup } from "../../config/server-config.js";
import type { Db } from "../../db/database.js";
import { getInstance } from "../../db/instances-table.js";
import type { CertificateAuthority } from "../../pki/ca.js";
import type { FileTransfer } from "../../protocol/gen/nstance/v1/agent.js";
import { ConcurrencyLimit } from "../../shared/concurrency-limit.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { runInBackground } from "../../shared/run-in-background.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { ConfigStore } from "../config-store.js";
import type { SecretsStore } from "../secrets/secrets-store.js";
import type { AgentKeyCache } from "./agent-key-cache.js";
import { writeCertlog } from "./certlog.js";
import {
  CA_CERT_FILE,
  certificatesDueForRenewal,
  DEFAULT_CERT_RENEW_FRACTION,
  expectedFiles,
  type FilePlan,
  filesAwaitingKeys,
  planFileDelivery,
} from "./file-plan.js";
import { type ReportedState, reportedStateFromJson } from "./health-report.js";
import type { InstanceStreams } from "./instance-streams.js";
import type { IssuedCertificateRow } from "./public-keys-table.js";
import { type RenderedFile, renderFile } from "./render-file.js";
import { templateDataFor } from "./template-data.js";

/** A patch pushed for a hash is not pushed again for this long (the agent may be applying it). */
export const DEFAULT_REDELIVERY_INTERVAL_MS = 30_000;
/** Deliveries (rendering, certificate issuance, certlog writes) running at once. */
export const DEFAULT_DELIVERY_CONCURRENCY = 16;

/** Which instance a report or stream belongs to. */
export interface InstanceRef {
  id: string;
  tenant: string;
  groupKey: string;
}

/** Options for {@link FileDelivery}. */
export interface FileDeliveryOptions {
  db: Db;
  /** The bucket; `storage` files are read under `prefix`, certlog entries written there. */
  storage: Pick<ObjectStorage, "get" | "put">;
  prefix: string;
  shard: string;
  clusterId: string;
  ca: CertificateAuthority;
  configStore: Pick<ConfigStore, "current" | "group">;
  secrets: Pick<SecretsStore, "get">;
  keys: AgentKeyCache;
  streams: InstanceStreams<FileTransfer>;
  logger: Logger;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Defaults to {@link DEFAULT_REDELIVERY_INTERVAL_MS}. */
  redeliveryIntervalMs?: number;
  /** Defaults to {@link DEFAULT_DELIVERY_CONCURRENCY}. */
  concurrency?: number;
  /** Defaults to {@link DEFAULT_CERT_RENEW_FRACTION}. */
  certRenewFraction?: number;
}

interface LastPush {
  mode: "whole" | "partial";
  targetHash: string;
  files: ReadonlySet<string>;
  at: number;
}

interface InstanceState {
  ref: InstanceRef;
  reported: ReportedState | undefined;
  /** Files to push even if present: certificates whose key was replaced. */
  forced: Set<string>;
  lastPush: LastPush | undefined;
  job: Promise<void> | undefined;
  rerun: boolean;
}

/** What one delivery did, for tests and logs. */
export interface DeliveryOutcome {
  mode: FilePlan["mode"];
  files: string[];
  configHash: string;
}

/** Pushes files to agents; see the file comment. */
export class FileDelivery {
  readonly #opts: FileDeliveryOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #redeliveryMs: number;
  readonly #renewFraction: number;
  readonly #limit: ConcurrencyLimit;
  readonly #states = new Map<string, InstanceState>();
  readonly #stop = new AbortController();
  #deliveries = 0;

  constructor(opts: FileDeliveryOptions) {
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#redeliveryMs = opts.redeliveryIntervalMs ?? DEFAULT_REDELIVERY_INTERVAL_MS;
    this.#renewFraction = opts.certRenewFraction ?? DEFAULT_CERT_RENEW_FRACTION;
    this.#limit = new ConcurrencyLimit(opts.concurrency ?? DEFAULT_DELIVERY_CONCURRENCY);
  }

  /** Patches queued since start. */
  get deliveries(): number {
    return this.#deliveries;
  }

  #state(ref: InstanceRef): InstanceState {
    let st = this.#states.get(ref.id);
    if (!st) {
      st = {
        ref,
        reported: undefined,
        forced: new Set(),
        lastPush: undefined,
        job: undefined,
        rerun: false,
      };
      this.#states.set(ref.id, st);
    }
    st.ref = ref;
    return st;
  }

  #plan(st: InstanceState, group: EffectiveGroup): FilePlan {
    const keys = this.#opts.keys;
    const forced = new Set(st.forced);
    for (const f of certificatesDueForRenewal(
      group,
      keys.certificates(st.ref.id),
      this.#now(),
      this.#renewFraction,
    )) {
      forced.add(f);
    }
    return planFileDelivery({
      expected: expectedFiles(group),
      runtimeHash: group.runtimeHash,
      reported: st.reported,
      undeliverable: filesAwaitingKeys(group, keys.keys(st.ref.id)),
      forced,
    });
  }

  #suppressed(st: InstanceState, group: EffectiveGroup, plan: FilePlan): boolean {
    const last = st.lastPush;
    // A report with the target hash proves an earlier whole-set patch was applied, so files it
    // still lacks are really missing; a partial patch may still be on its way.
    return (
      last !== undefined &&
      last.targetHash === group.runtimeHash &&
      last.mode === (plan.mode === "whole" ? "whole" : "partial") &&
      this.#now() - last.at < this.#redeliveryMs &&
      plan.files.every((f) => last.files.has(f))
    );
  }

  /**
   * Handles a stored report: cheap when nothing is to be done (the common case), else schedules
   * a delivery. Never throws.
   */
  onReport(ref: InstanceRef, reported: ReportedState): void {
    const st = this.#state(ref);
    st.reported = reported;
    if (this.#stop.signal.aborted || !this.#opts.streams.has(ref.id)) return;
    const group = this.#opts.configStore.group(ref.tenant, ref.groupKey);
    if (!group) return;
    try {
      const plan = this.#plan(st, group);
      if (plan.mode === "none" || this.#suppressed(st, group, plan)) return;
    } catch (err) {
      this.#logger.error("Cannot plan file delivery", {
        instance_id: ref.id,
        err: errorMessage(err),
      });
      return;
    }
    this.#schedule(st);
  }

  /**
   * A ReceiveFiles stream opened: push what the last stored report says is missing (everything
   * when the agent has not reported yet).
   */
  onStreamOpened(ref: InstanceRef): void {
    const st = this.#state(ref);
    st.lastPush = undefined;
    st.reported ??= reportedStateFromJson(this.#healthJson(ref.id));
    this.#schedule(st);
  }

  /** The agent submitted new or replaced keys: issue the certificates that use them. */
  onKeysChanged(ref: InstanceRef, keyFiles: readonly string[]): void {
    const st = this.#state(ref);
    const group = this.#opts.configStore.group(ref.tenant, ref.groupKey);
    if (!group) return;
    for (const [name, f] of Object.entries(group.files)) {
      if (f.kind === "certificate" && f.key && keyFiles.includes(f.key.name)) st.forced.add(name);
    }
    st.reported ??= reportedStateFromJson(this.#healthJson(ref.id));
    this.#schedule(st);
  }

  /** Forgets an instance's delivery state (its agent disconnected). */
  forget(instanceId: string): void {
    const st = this.#states.get(instanceId);
    if (st && !st.job) this.#states.delete(instanceId);
  }

  /** Stops scheduling and waits for running deliveries. Idempotent. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all([...this.#states.values()].flatMap((s) => (s.job ? [s.job] : [])));
  }

  /** Waits until no delivery of `instanceId` is running (tests). */
  async idle(instanceId: string): Promise<void> {
    for (;;) {
      const job = this.#states.get(instanceId)?.job;
      if (!job) return;
      await job;
    }
  }

  #healthJson(instanceId: string): string | undefined {
    const r = this.#opts.db.prepare("SELECT health FROM instances WHERE id = ?").get(instanceId) as
      | { health: string | null }
      | undefined;
    return r?.health ?? undefined;
  }

  #schedule(st: InstanceState): void {
    if (this.#stop.signal.aborted) return;
    if (st.job) {
      st.rerun = true;
      return;
    }
    st.job = runInBackground(
      "file_delivery",
      async () => {
        try {
          do {
            st.rerun = false;
            await this.#limit.run(() => this.#deliver(st));
          } while (st.rerun && !this.#stop.signal.aborted);
        } finally {
          st.job = undefined;
        }
      },
      this.#logger,
    );
  }

  async #deliver(st: InstanceState): Promise<DeliveryOutcome | undefined> {
    const { ref } = st;
    const o = this.#opts;
    const signal = this.#stop.signal;
    if (signal.aborted || !o.streams.has(ref.id)) return undefined;
    const row = getInstance(o.db, ref.id);
    if (!row || row.deletedAt !== undefined) return undefined;
    const group = o.configStore.group(ref.tenant, ref.groupKey);
    if (!group) {
      this.#logger.warn("Instance's group is not configured; no files delivered", {
        instance_id: ref.id,
        tenant: ref.tenant,
        group: ref.groupKey,
      });
      return undefined;
    }
    const plan = this.#plan(st, group);
    if (plan.mode === "none" || this.#suppressed(st, group, plan)) return undefined;

    const config = o.configStore.current().config;
    const nowMs = this.#now();
    const now = new Date(nowMs);
    const data = templateDataFor({
      row,
      group,
      clusterId: o.clusterId,
      caCertPem: o.ca.certPem,
      shard: o.shard,
    });
    const deps = {
      secrets: o.secrets,
      storage: o.storage,
      prefix: o.prefix,
      ca: o.ca,
      certificates: config.certificates,
      publicKeys: o.keys.keys(ref.id),
      now,
    };
    const rendered: RenderedFile[] = [];
    const failures: Array<{ file: string; error: string }> = [];
    for (const name of plan.files) {
      const file = group.files[name];
      try {
        if (!file) {
          // Only CA_CERT_FILE is expected without a template entry.
          rendered.push({ filename: CA_CERT_FILE, content: Buffer.from(o.ca.certPem) });
          continue;
        }
        const r = await renderFile(name, file, data, deps, signal);
        if (r) rendered.push(r);
      } catch (err) {
        if (signal.aborted) return undefined;
        failures.push({ file: name, error: errorMessage(err) });
      }
    }
    const backOff = () => {
      st.lastPush = {
        mode: plan.mode === "whole" ? "whole" : "partial",
        targetHash: group.runtimeHash,
        files: new Set(plan.files),
        at: nowMs,
      };
    };
    if (failures.length > 0) {
      this.#logger.warn(
        plan.mode === "whole"
          ? "Cannot render every file; the patch is withheld until they render"
          : "Cannot render some files; delivering the others",
        { instance_id: ref.id, mode: plan.mode, failures },
      );
      if (plan.mode === "whole" || rendered.length === 0) {
        backOff();
        return undefined;
      }
    }
    if (rendered.length === 0) return undefined;

    const certs = rendered.filter((r) => r.certificate !== undefined);
    if (certs.length > 0) {
      try {
        await writeCertlog(
          o.storage,
          o.prefix,
          {
            instanceId: ref.id,
            tenant: ref.tenant,
            issuedAt: now,
            certificates: certs.map((r) => ({
              certificateName: r.certificate!.certificateName,
              filename: r.filename,
              serial: r.certificate!.serial,
              expiresAt: r.certificate!.expiresAt,
            })),
          },
          signal,
        );
      } catch (err) {
        // The certificates are signed already; the audit log is retried with the next batch.
        this.#logger.error("Cannot write the certificate log", {
          instance_id: ref.id,
          err: errorMessage(err),
        });
      }
      o.keys.storeCertificates(
        ref.id,
        certs.map(
          (r): IssuedCertificateRow => ({
            instanceId: ref.id,
            filename: r.filename,
            certificateName: r.certificate!.certificateName,
            keyFile: r.certificate!.keyFile,
            serial: r.certificate!.serial,
            issuedAt: nowMs,
            expiresAt: r.certificate!.expiresAt.getTime(),
          }),
        ),
      );
    }

    const messages: FileTransfer[] = rendered.map((r) => ({
      filename: r.filename,
      content: r.content,
      lastModified: now,
      configHash: "",
    }));
    messages.push({
      filename: "",
      content: Buffer.alloc(0),
      lastModified: undefined,
      configHash: group.runtimeHash,
    });
    if (!o.streams.send(ref.id, messages)) return undefined;
    this.#deliveries++;
    backOff();
    for (const r of rendered) st.forced.delete(r.filename);
    const outcome = {
      mode: plan.mode,
      files: rendered.map((r) => r.filename),
      configHash: group.runtimeHash,
    };
    this.#logger.info("Files delivered", {
      instance_id: ref.id,
      mode: outcome.mode,
      files: outcome.files,
      config_hash: outcome.configHash,
      certificates: certs.map((r) => r.certificate!.serial),
    });
    return outcome;
  }
}
