// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { MetadataServer, type MetadataServerOptions } from "../../test/support/metadata-server.js";
import { silentLogger } from "../shared/logger.js";
import {
  AwsMetadataClient,
  parseAwsInstanceAction,
  SpotNoticeWatcher,
  type SpotNoticeWatcherOptions,
} from "./spot-notice.js";

const FAST = 20;

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("parseAwsInstanceAction", () => {
  it("reads action and time", () => {
    assert.deepEqual(
      parseAwsInstanceAction('{"action":"terminate","time":"2017-09-18T08:22:00Z"}'),
      {
        action: "terminate",
        deadline: new Date("2017-09-18T08:22:00Z"),
      },
    );
  });
  it("tolerates a missing or bad time", () => {
    assert.deepEqual(parseAwsInstanceAction('{"action":"stop"}'), { action: "stop" });
    assert.deepEqual(parseAwsInstanceAction('{"action":"hibernate","time":"soon"}'), {
      action: "hibernate",
    });
  });
  for (const bad of ["", "null", "{}", '{"action":""}', "terminate"]) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseAwsInstanceAction(bad)));
  }
});

describe("SpotNoticeWatcher", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  async function serve(opts: MetadataServerOptions): Promise<MetadataServer> {
    const s = new MetadataServer(opts);
    await s.start();
    cleanups.push(() => s.stop());
    return s;
  }

  function watch(opts: Omit<SpotNoticeWatcherOptions, "logger">): SpotNoticeWatcher {
    const w = new SpotNoticeWatcher({
      pollIntervalMs: FAST,
      requestTimeoutMs: 2_000,
      logger: silentLogger,
      ...opts,
    });
    cleanups.push(() => w.stop());
    return w;
  }

  it("AWS with IMDSv2 required: detects spot, polls with a token, and the notice sticks", async () => {
    const md = await serve({ cloud: "aws", requireToken: true });
    const w = watch({ metadataUrl: md.url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "watching");
    assert.equal(w.provider, "aws");
    await waitFor(
      () => md.countRequests("/latest/meta-data/spot/instance-action") >= 2,
      "two polls",
    );
    assert.equal(w.current(), undefined);
    const put = md.requests.find((r) => r.path === "/latest/api/token");
    assert.equal(put?.method, "PUT");
    assert.equal(put?.headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
    assert.equal(md.countRequests("/latest/api/token"), 1, "the token is reused");
    assert.ok(
      md.requests
        .filter((r) => r.path.startsWith("/latest/meta-data/"))
        .every((r) => r.headers["x-aws-ec2-metadata-token"]),
    );

    md.setNotice({ action: "terminate", time: "2030-01-02T03:04:05Z" });
    await waitFor(() => w.current() !== undefined, "the notice");
    assert.deepEqual(w.current(), {
      action: "terminate",
      deadline: new Date("2030-01-02T03:04:05Z"),
    });
    assert.equal(w.state, "noticed");
    md.setNotice(undefined);
    const polls = md.countRequests("/latest/meta-data/spot/instance-action");
    await new Promise((r) => setTimeout(r, FAST * 5));
    assert.equal(
      md.countRequests("/latest/meta-data/spot/instance-action"),
      polls,
      "polling ends with the notice",
    );
    assert.equal(w.current()?.action, "terminate");
    await w.stop();
    assert.equal(w.current()?.action, "terminate", "still readable after stop");
  });

  it("AWS IMDSv1-only: works without a token", async () => {
    const md = await serve({ cloud: "aws", tokenUnsupported: true });
    const w = watch({ provider: "aws", metadataUrl: md.url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "watching");
    md.setNotice({ action: "stop" });
    await waitFor(() => w.current() !== undefined, "the notice");
    assert.equal(w.current()?.action, "stop");
    assert.equal(md.countRequests("/latest/api/token"), 1, "asked once, then gave up on tokens");
  });

  it("AWS on-demand: disabled, never polls", async () => {
    const md = await serve({ cloud: "aws", spot: false });
    const w = watch({ metadataUrl: md.url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "disabled");
    assert.equal(w.provider, undefined);
    await new Promise((r) => setTimeout(r, FAST * 3));
    assert.equal(md.countRequests("/latest/meta-data/spot/instance-action"), 0);
  });

  it("Google preemptible: auto-detect falls through AWS, sends Metadata-Flavor, deadline = now + 30 s", async () => {
    const md = await serve({ cloud: "google" });
    const now = 1_800_000_000_000;
    const w = watch({ metadataUrl: md.url, now: () => now });
    w.start();
    await w.whenDetected();
    assert.equal(w.provider, "google");
    await waitFor(() => md.countRequests("/computeMetadata/v1/instance/preempted") >= 1, "a poll");
    assert.equal(w.current(), undefined);
    md.setNotice({ action: "terminate" });
    await waitFor(() => w.current() !== undefined, "the notice");
    assert.deepEqual(w.current(), { action: "terminate", deadline: new Date(now + 30_000) });
    assert.ok(
      md.requests
        .filter((r) => r.path.startsWith("/computeMetadata/"))
        .every((r) => r.headers["metadata-flavor"] === "Google"),
    );
  });

  it("Google standard VM: disabled", async () => {
    const md = await serve({ cloud: "google", spot: false });
    const w = watch({ provider: "google", metadataUrl: md.url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "disabled");
  });

  it("NSTANCE_PROVIDER=none asks nothing", async () => {
    const md = await serve({ cloud: "aws" });
    const w = watch({ provider: "none", metadataUrl: md.url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "disabled");
    assert.equal(md.requests.length, 0);
  });

  it("auto-detect with no metadata service gives up quietly", async () => {
    const md = new MetadataServer({ cloud: "aws" });
    await md.start();
    const url = md.url;
    await md.stop();
    const w = watch({ metadataUrl: url });
    w.start();
    await w.whenDetected();
    assert.equal(w.state, "disabled");
  });

  it("an explicit provider is retried until its metadata answers; poll errors are survived", async () => {
    const md = await serve({ cloud: "aws" });
    md.setFailure(500);
    const w = watch({ provider: "aws", metadataUrl: md.url });
    w.start();
    await waitFor(() => md.countRequests("/latest/meta-data/instance-life-cycle") >= 2, "retries");
    assert.equal(w.state, "detecting");
    md.setFailure(undefined);
    await w.whenDetected();
    assert.equal(w.state, "watching");
    md.setFailure(503);
    const before = md.countRequests("/latest/meta-data/spot/instance-action");
    await waitFor(
      () => md.countRequests("/latest/meta-data/spot/instance-action") >= before + 2,
      "failing polls",
    );
    assert.equal(w.state, "watching");
    md.setFailure(undefined);
    md.setNotice({ action: "terminate" });
    await waitFor(() => w.current() !== undefined, "the notice");
  });

  it("stop is idempotent, ends polling, and start twice is refused", async () => {
    const md = await serve({ cloud: "aws" });
    const w = watch({ metadataUrl: md.url });
    w.start();
    assert.throws(() => w.start(), /spot notice watcher is detecting/);
    await w.whenDetected();
    await w.stop();
    await w.stop();
    assert.equal(w.state, "stopped");
    const n = md.requests.length;
    await new Promise((r) => setTimeout(r, FAST * 4));
    assert.equal(md.requests.length, n);
  });

  it("a stop during detection does not hang", async () => {
    const w = watch({ provider: "aws", metadataUrl: "http://127.0.0.1:9", pollIntervalMs: 60_000 });
    w.start();
    await new Promise((r) => setTimeout(r, 20));
    await w.stop();
    await w.whenDetected();
    assert.equal(w.state, "stopped");
  });
});

describe("AwsMetadataClient", () => {
  it("refreshes a token the service stopped accepting", async () => {
    const md = new MetadataServer({ cloud: "aws", requireToken: true });
    await md.start();
    try {
      let now = 0;
      const c = new AwsMetadataClient({ baseUrl: md.url, now: () => now });
      assert.equal(await c.isSpot(), true);
      now += 6 * 3600 * 1000;
      assert.equal(await c.fetchNotice(), undefined);
      assert.equal(md.countRequests("/latest/api/token"), 2, "expired token renewed");
    } finally {
      await md.stop();
    }
  });
});
