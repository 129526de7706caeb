// SPDX-License-Identifier: Apache-2.0
// Failure detection end to end (issue 7), spot termination: the metadata service of one agent
// announces a termination. The server replaces the instance at once and drains it within the
// notice: the replacement exists, and the old instance is gone, before the provider's deadline.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { MetadataServer } from "../support/metadata-server.js";
import { type DetectionFleet, startDetectionFleet } from "./detection-fixture.js";

/** Time from the notice to the (announced) termination; AWS gives two minutes. */
const NOTICE_MS = 60_000;

/** Agents on "spot VMs", each with a metadata service of its own; later ones see no notice. */
const SPOT_AGENTS = 4;

describe("failure detection: spot termination notice", { concurrency: false }, () => {
  let d: DetectionFleet;
  const metadata = Array.from({ length: SPOT_AGENTS }, () => new MetadataServer({ cloud: "aws" }));
  before(async () => {
    for (const m of metadata) await m.start();
    d = await startDetectionFleet({
      firstAgents: metadata.map((m) => ({
        NSTANCE_PROVIDER: "aws",
        NSTANCE_METADATA_URL: m.url,
        NSTANCE_SPOT_POLL_INTERVAL: "500ms",
      })),
    });
  });
  after(async () => {
    await d?.stop();
    for (const m of metadata) await m.stop();
  });

  it("replaces the noticed instance before the deadline and drains it within the notice", async (t) => {
    // One agent's service announces the termination; the others never do.
    const { id: victim, k } = await d.firstAgentVictim(3);
    const noticedAt = Date.now();
    const deadlineAt = noticedAt + NOTICE_MS;
    metadata[k]!.setNotice({ action: "terminate", time: new Date(deadlineAt).toISOString() });

    await d.until("the noticed instance deleted", () => d.deleted(victim));
    // The replacement and the drain notice come in one reconcile pass (the VM goes at the
    // deadline whatever happens, so the operator hears at once); the delete comes last.
    const [notice, replacement, gone] = d.assertStory(victim, [
      "termination_notice",
      "replacement_started",
      "deleted",
    ]);
    const drain = d.assertStory(victim, ["termination_notice", "drain_notified", "deleted"])[1];
    const newId = String(replacement!.evidence.replacement_id);
    const created = d.decision(newId, "created");
    assert.ok(created, "the replacement was created");
    assert.ok(created.at < deadlineAt, "replacement created before the deadline");
    assert.ok(
      Date.parse(String(drain!.evidence.delete_at)) <= deadlineAt,
      "the drain ends by the deadline",
    );
    assert.ok(gone!.at < deadlineAt, "the old instance left before the deadline");
    assert.equal(d.decision(victim, "found_unhealthy"), undefined, "a notice is not a failure");
    t.diagnostic(
      `notice → recorded ${notice!.at - noticedAt} ms, replacement created ${created.at - noticedAt} ms, deleted ${gone!.at - noticedAt} ms (deadline ${NOTICE_MS} ms)`,
    );
    const whole = await d.whole(3);
    assert.ok(whole.includes(newId));
  });
});
