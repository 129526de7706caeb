// SPDX-License-Identifier: Apache-2.0
// The web dashboard in a real browser (playwright-core driving Debian's chromium) against a
// running local shard: a real nstance-server whose `local` provider runs real nstance-agent
// processes, and `nstance-admin serve` in front of it. The page signs in with a token (kept out of
// URLs and localStorage), shows the shard's leader, the group and its instances, scales the group
// from its form and sees the new instances appear and turn healthy, shows an instance's decision
// history, and is saved as docs/dashboard.png. Without chromium the test skips and says why.
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { AdminServe, type AdminServeInfo } from "../../src/admin/serve/admin-serve.js";
import { loadOperatorIdentity } from "../../src/admin/service/operator-identity.js";
import { silentLogger } from "../../src/shared/logger.js";
import { FileStorage } from "../../src/storage/file-storage.js";
import { FLEET_SHARD, FLEET_WAIT_MS, LocalFleet } from "./local-fleet.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = fileURLToPath(new URL("../../docs/dashboard.png", import.meta.url));
const TOKEN = `dashboard-e2e-${createHash("sha256").update(String(Math.random())).digest("hex").slice(0, 24)}`;
const GROUP = "web";
/** Report interval of the agents, so health shows up within seconds. */
const REPORT_INTERVAL = "2s";

const skipReason = existsSync(CHROMIUM)
  ? undefined
  : `chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
if (skipReason) process.stdout.write(`dashboard browser test skipped: ${skipReason}\n`);

/** Chromium trusts exactly this certificate: the SHA-256 of its public key, base64. */
function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

/** Cell texts of the rows of a table's body. */
function rows(page: Page, table: string): Promise<string[][]> {
  // A string expression: this project compiles without the DOM library.
  return page.evaluate(
    `Array.from(document.querySelectorAll("#${table} tbody tr"), (tr) => Array.from(tr.cells, (c) => c.textContent.trim()))`,
  );
}

/** An expression evaluated in the page. */
function inPage<T>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression);
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  detail: () => Promise<string> = async () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`${what} not seen within ${timeoutMs} ms${await detail()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("web dashboard in chromium against a local shard", { concurrency: false }, () => {
  let fleet: LocalFleet | undefined;
  let serve: AdminServe | undefined;
  let info: AdminServeInfo;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    if (skipReason) return;
    const dir = await mkdtemp(join(tmpdir(), "nstance-e2e-dashboard-"));
    fleet = await LocalFleet.start({
      dir,
      edits: [[["groups", "default", GROUP, "size"], 1]],
      agentEnv: { NSTANCE_METRICS_INTERVAL: REPORT_INTERVAL },
    });
    const tokenPath = join(dir, "dashboard.token");
    await writeFile(tokenPath, `${TOKEN}\n`, { mode: 0o600 });
    serve = new AdminServe({
      servers: [{ shard: FLEET_SHARD, address: `localhost:${fleet.server.ports.operator}` }],
      identity: await loadOperatorIdentity(fleet.identityDir),
      tokenFiles: [{ name: "e2e", path: tokenPath }],
      bind: "127.0.0.1:0",
      storage: new FileStorage({ dir: fleet.bucket }),
      logger: silentLogger,
    });
    info = await serve.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
        `--ignore-certificate-errors-spki-list=${spkiHash(info.selfSigned!.certPem)}`,
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  after(async () => {
    await browser?.close();
    await serve?.stop();
    await fleet?.stop();
  });

  it("signs in, sees the leader, the group and its instance, scales it and sees the new instances", async (t) => {
    if (skipReason) {
      t.skip(skipReason);
      return;
    }
    const f = fleet!;
    const recent = () => f.recent();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));

    await page.goto(info.url);
    // The first Tab reaches the skip link: the page is keyboard-navigable from the top.
    await page.keyboard.press("Tab");
    assert.equal(await inPage(page, "document.activeElement?.textContent"), "Skip to content");

    await page.getByLabel("API token").fill("wrong-token-0123456789");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That token was refused.").waitFor({ timeout: 30_000 });
    await page.getByLabel("API token").fill(TOKEN);
    await page.getByLabel("API token").press("Enter");
    await page.getByText("Connected", { exact: true }).waitFor({ timeout: 30_000 });
    assert.doesNotMatch(page.url(), new RegExp(TOKEN), "the token never goes into the URL");
    assert.equal(await inPage(page, "localStorage.length"), 0, "nor into localStorage");

    // The shard with its leader from the bucket, the group with desired and actual sizes.
    // The servers column comes from heartbeats (every 5 s): it may still say standby just after
    // the election, so wait for it to catch up with the leadership record.
    const shard = await until(
      "the shard with its leader",
      async () =>
        (await rows(page, "shards")).find(
          (r) =>
            r[0] === FLEET_SHARD &&
            r[3] === f.server.id &&
            new RegExp(`${f.server.id} \\(leader\\)`).test(r[5] ?? ""),
        ),
      FLEET_WAIT_MS,
    );
    assert.equal(shard[2], "reachable");
    assert.match(shard[5]!, new RegExp(`${f.server.id} \\(leader\\)`));
    const groupRow = await until(
      "the group row",
      async () => (await rows(page, "groups")).find((r) => r[1] === GROUP),
      FLEET_WAIT_MS,
    );
    assert.equal(groupRow[3], "1", "desired size");
    const first = await until(
      "the first instance running and healthy",
      async () => {
        const r = (await rows(page, "instances")).filter((c) => c[2] === GROUP);
        return r.length === 1 && r[0]![3] === "running" && r[0]![4] === "healthy" ? r : undefined;
      },
      FLEET_WAIT_MS,
      recent,
    );
    t.diagnostic(`first instance: ${first[0]!.join(" | ")}`);

    // Scale from the page: the form, not the API.
    const size = page.getByLabel(`Desired size of ${GROUP} on ${FLEET_SHARD}`);
    await size.fill("3");
    await size.press("Enter");
    await page.getByText(`Scaled ${GROUP} on ${FLEET_SHARD} to 3.`).waitFor({ timeout: 30_000 });
    const three = await until(
      "three running, healthy instances",
      async () => {
        const r = (await rows(page, "instances")).filter((c) => c[2] === GROUP);
        return r.length === 3 && r.every((c) => c[3] === "running" && c[4] === "healthy")
          ? r
          : undefined;
      },
      FLEET_WAIT_MS,
      recent,
    );
    t.diagnostic(`after scaling: ${three.map((r) => r[0]).join(", ")}`);
    await until(
      "the group steady at 3",
      async () =>
        (await rows(page, "groups")).find(
          (r) => r[1] === GROUP && r[3] === "3" && r[4] === "3" && r[5] === "steady",
        ),
      FLEET_WAIT_MS,
    );

    // The decision history of a new instance, opened and closed with the keyboard.
    const newest = (three.find((r) => r[0] !== first[0]![0]) ?? three[2]!)[0]!;
    const history = page.getByRole("button", { name: `Decision history of ${newest}` });
    await history.focus();
    await page.keyboard.press("Enter");
    await page.locator("#history-list li").first().waitFor({ timeout: 30_000 });
    const decisions = await page.locator("#history-list li strong").allTextContents();
    t.diagnostic(`decisions of ${newest}: ${decisions.join(", ")}`);
    assert.ok(decisions.length > 0);
    assert.ok(
      decisions.some((d) => /creat/.test(d ?? "")),
      `a creation decision is listed: ${decisions.join(", ")}`,
    );
    assert.equal(
      await inPage(page, "document.activeElement?.id"),
      "history-title",
      "focus moved to the history",
    );

    await mkdir(join(SCREENSHOT, ".."), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    await page.keyboard.press("Escape");
    assert.equal(await page.locator("#history").isHidden(), true);
    assert.equal(
      await inPage(page, 'document.activeElement?.getAttribute("aria-label")'),
      `Decision history of ${newest}`,
      "focus returns to the button that opened the history",
    );
    assert.deepEqual(errors, [], "no script errors on the page");
  });
});
