// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError } from "../shared/errors.js";
import { createProvider } from "./create-provider.js";
import { FakeProvider } from "./fake/fake-provider.js";
import {
  isTerminalStatus,
  isUnhealthyStatus,
  PROVIDER_STATUSES,
  ProviderError,
} from "./provider.js";
import { testCreateRequest } from "./testing.js";

describe("createProvider", () => {
  it("rejects an unknown kind, naming the known ones", async () => {
    await assert.rejects(createProvider("azure"), (err: unknown) => {
      assert.equal((err as { code?: string }).code, "invalid_argument");
      assert.match(
        String(err),
        /unknown provider "azure" \(want one of local, fake, aws, google, proxmox\)/,
      );
      return true;
    });
  });

  it("builds a fake provider with durations from options and code-only settings", async () => {
    let now = 0;
    const p = await createProvider("fake", {
      options: { create_delay: "2s", delete_delay: "500ms" },
      fake: { now: () => now },
    });
    assert.ok(p instanceof FakeProvider);
    const req = testCreateRequest();
    const { providerInstanceId } = await p.createInstance(req);
    now = 1999;
    assert.equal(
      (await p.getInstanceStatus(req.instanceId, providerInstanceId))?.status,
      "pending",
    );
    now = 2000;
    assert.equal(
      (await p.getInstanceStatus(req.instanceId, providerInstanceId))?.status,
      "running",
    );
  });

  it("builds a local provider over the given state dir", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-create-provider-"));
    try {
      const p = await createProvider("local", { options: { state_dir: dir, stop_grace: "1s" } });
      assert.equal(p.kind, "local");
      assert.deepEqual(await p.listInstances({ clusterId: "c", shard: "s" }), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("builds the cloud providers from options and environment", async () => {
    const aws = await createProvider("aws", {
      region: "us-west-2",
      options: { min_free_ips: 20 },
      env: { AWS_ACCESS_KEY_ID: "AKID", AWS_SECRET_ACCESS_KEY: "s" },
    });
    assert.equal(aws.kind, "aws");
    await aws.close();
    const google = await createProvider("google", {
      region: "us-central1",
      zone: "us-central1-a",
      env: { GOOGLE_CLOUD_PROJECT: "proj" },
    });
    assert.equal(google.kind, "google");
    const proxmox = await createProvider("proxmox", {
      env: { PROXMOX_TOKEN_ID: "root@pam!n", PROXMOX_TOKEN_SECRET: "x" },
      options: { vmid_floor: 20000 },
    });
    assert.equal(proxmox.kind, "proxmox");
  });

  it("reports every bad option and missing setting at once", async () => {
    await assert.rejects(
      createProvider("proxmox", { env: {}, options: { vmid_floor: -1, colour: "blue" } }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((p) => p.path),
          [
            "shard.infra.options.colour",
            "shard.infra.options.vmid_floor",
            "PROXMOX_TOKEN_ID",
            "PROXMOX_TOKEN_SECRET",
          ],
        );
        return true;
      },
    );
    await assert.rejects(
      createProvider("fake", { options: { create_delay: "2d" } }),
      /create_delay: must be a Go duration/,
    );
    await assert.rejects(
      createProvider("aws", { env: {} }),
      /shard.infra.region: is required for aws/,
    );
    await assert.rejects(
      createProvider("google", { env: {}, region: "r", zone: "z" }),
      /project: is required/,
    );
  });
});

describe("provider statuses", () => {
  it("classifies every normalised status", () => {
    const unhealthy = PROVIDER_STATUSES.filter(isUnhealthyStatus);
    assert.deepEqual(unhealthy, [
      "stopping",
      "stopped",
      "suspending",
      "suspended",
      "deleting",
      "deleted",
      "repairing",
    ]);
    assert.deepEqual(PROVIDER_STATUSES.filter(isTerminalStatus), ["deleting", "deleted"]);
    assert.ok(
      !isUnhealthyStatus("unknown") &&
        !isUnhealthyStatus("pending") &&
        !isUnhealthyStatus("running"),
    );
  });

  it("ProviderError carries provider, op, transient and a code", () => {
    const e = new ProviderError({
      provider: "aws",
      op: "RunInstances",
      message: "throttled",
      transient: true,
    });
    assert.equal(e.code, "unavailable");
    assert.equal(e.message, "aws RunInstances: throttled");
    assert.equal(e.name, "ProviderError");
    const p = new ProviderError({
      provider: "aws",
      op: "x",
      message: "m",
      transient: false,
      code: "not_found",
      cause: 1,
    });
    assert.equal(p.code, "not_found");
    assert.equal(p.cause, 1);
    assert.equal(
      new ProviderError({ provider: "local", op: "x", message: "m", transient: false }).code,
      "internal",
    );
  });
});
