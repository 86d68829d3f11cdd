// tests/e2e/browser.mjs - what the browser tests share: Debian's chromium
// driven by playwright-core (TADAK_NODE_DIR is the npm prefix scripts/setup
// installs it under), a fresh profile per run, and waiting on a condition.
//
//   import { waitFor, withPage } from "./browser.mjs";
//   const result = await withPage(outDir, "name", async (page) => { ... });
import { createRequire } from "node:module";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";

const require = createRequire(path.join(process.env.TADAK_NODE_DIR, "node_modules") + "/");
const { chromium } = require("playwright-core");

// Until fn() returns something truthy (that value), or throw after timeoutMs.
export async function waitFor(what, fn, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Run fn(page) in headless Chromium with a profile of its own under outDir
// (removed afterwards), a viewport of width x height; fn's value is returned.
export async function withPage(outDir, name, fn, { width = 900, height = 760 } = {}) {
  const profile = path.join(outDir, `chromium-profile-${name}`);
  rmSync(profile, { recursive: true, force: true });
  mkdirSync(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width, height },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    return await fn(context.pages()[0] || (await context.newPage()));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
