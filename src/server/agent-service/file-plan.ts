// SPDX-License-Identifier: Apache-2.0
/**
 * Which files to push to an agent after a report (seed 003 step 2, reference §5.4), as a pure
 * decision: when the reported config hash differs from the group's runtime hash, the whole set
 * (runtime drift is fixed in place, never by replacing the instance); otherwise only the files the
 * agent reports missing, empty or errored, plus those that must change anyway (a certificate due
 * for renewal, a certificate whose key the agent replaced).
 */
import type { EffectiveGroup } from "../../config/server-config.js";
import type { ReportedState } from "./health-report.js";
import type { IssuedCertificateRow } from "./public-keys-table.js";

/**
 * The cluster CA certificate, delivered to every agent as `ca.crt` (unless a template defines its
 * own file of that name), so workloads find the cluster CA beside the certificates it signed, and
 * a rotated CA reaches running instances the same way as any other file.
 */
export const CA_CERT_FILE = "ca.crt";
/** A certificate is renewed once less than this fraction of its lifetime remains. */
export const DEFAULT_CERT_RENEW_FRACTION = 1 / 3;

/** What to push. */
export interface FilePlan {
  /** `whole`: the config hash differs; `partial`: only some files; `none`: nothing to do. */
  mode: "whole" | "partial" | "none";
  /** The files to push, sorted. */
  files: string[];
}

/** Inputs of {@link planFileDelivery}. */
export interface FilePlanInput {
  /** Every file the agent should have: the group's files plus {@link CA_CERT_FILE}. */
  expected: readonly string[];
  /** The group's runtime config hash. */
  runtimeHash: string;
  /** The agent's last report; `undefined` when it has not reported yet (push everything). */
  reported: ReportedState | undefined;
  /** Files that cannot be produced yet (a certificate whose key the agent has not submitted). */
  undeliverable: ReadonlySet<string>;
  /** Files to push even if the agent has them (renewals, replaced keys). */
  forced: ReadonlySet<string>;
}

/** Decides which files to push; see the file comment. */
export function planFileDelivery(input: FilePlanInput): FilePlan {
  const deliverable = input.expected.filter((f) => !input.undeliverable.has(f));
  if (!input.reported || input.reported.configHash !== input.runtimeHash) {
    return { mode: "whole", files: [...deliverable].sort() };
  }
  const files = input.reported.files;
  const needed = deliverable.filter((name) => {
    if (input.forced.has(name)) return true;
    const f = files.get(name);
    return f === undefined || f.kind !== "present";
  });
  return needed.length === 0
    ? { mode: "none", files: [] }
    : { mode: "partial", files: needed.sort() };
}

/** The files an instance of `group` should have: the template's and {@link CA_CERT_FILE}. */
export function expectedFiles(group: Pick<EffectiveGroup, "files">): string[] {
  const names = Object.keys(group.files);
  return names.includes(CA_CERT_FILE) ? names : [...names, CA_CERT_FILE];
}

/**
 * Certificate files that cannot be issued yet: their key (`key.name`, e.g. `web.pub`) has not been
 * submitted by the agent.
 */
export function filesAwaitingKeys(
  group: Pick<EffectiveGroup, "files">,
  submittedKeys: { has(keyFile: string): boolean },
): Set<string> {
  const waiting = new Set<string>();
  for (const [name, f] of Object.entries(group.files)) {
    if (f.kind === "certificate" && f.key && !submittedKeys.has(f.key.name)) waiting.add(name);
  }
  return waiting;
}

/** Certificate files of `group` whose issued certificate is past its renewal point at `now`. */
export function certificatesDueForRenewal(
  group: Pick<EffectiveGroup, "files">,
  issued: ReadonlyMap<string, Pick<IssuedCertificateRow, "issuedAt" | "expiresAt">>,
  now: number,
  renewFraction = DEFAULT_CERT_RENEW_FRACTION,
): Set<string> {
  const due = new Set<string>();
  for (const [name, f] of Object.entries(group.files)) {
    if (f.kind !== "certificate") continue;
    const c = issued.get(name);
    if (!c) continue;
    const renewAt = c.expiresAt - (c.expiresAt - c.issuedAt) * renewFraction;
    if (now >= renewAt) due.add(name);
  }
  return due;
}
