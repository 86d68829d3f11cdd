// tests/e2e/page.mjs - drive the vote page (GET /) in headless Chromium.
//
//   node tests/e2e/page.mjs BASE_URL OUT_DIR CANDIDATE
//
// Opens the page, reads the candidate's tally, triple-clicks its button
// (three click events: three real POST /votes), waits until the three
// answers arrived and the consumer consumed three events (GET /stats), lets
// the page refresh twice more, and prints one JSON line with what it saw.
// Saves OUT_DIR/page.png. Needs Debian's chromium and playwright-core
// (scripts/setup installs both; TADAK_NODE_DIR points at the npm prefix).
import { mkdirSync } from "node:fs";
import path from "node:path";
import { waitFor, withPage } from "./browser.mjs";

const [base, outDir, candArg] = process.argv.slice(2);
const cand = Number(candArg || 2);

async function stats() {
  const r = await fetch(base + "/stats", { cache: "no-store" });
  return r.ok ? r.json() : null;
}

const result = await withPage(outDir, "page", async (page) => {
  const posts = [];
  const answers = [];
  page.on("request", (req) => {
    if (req.method() === "POST" && new URL(req.url()).pathname === "/votes") posts.push(req.url());
  });
  page.on("response", (resp) => {
    const req = resp.request();
    if (req.method() === "POST" && new URL(req.url()).pathname === "/votes")
      answers.push(resp.status());
  });
  const refreshes = () => page.evaluate(() => Number(document.body.dataset.refreshes));
  const tally = async () => Number(await page.textContent(`#tally-${cand}`));

  await page.goto(base + "/", { waitUntil: "load" });
  await waitFor("the first refresh", async () => (await refreshes()) >= 1);
  const user = Number(await page.textContent("#user"));
  const before = await tally();

  await page.click(`#vote-${cand}`, { clickCount: 3 });
  await waitFor("three answers", async () => answers.length >= 3);
  const s = await waitFor("the consumer to consume 3", async () => {
    const v = await stats();
    return v && v.consumed >= 3 ? v : null;
  });
  // Everything is settled; the page must show it after it refreshed again.
  const seen = await refreshes();
  await waitFor("two more refreshes", async () => (await refreshes()) >= seen + 2);
  const after = await tally();
  const pageCounters = {
    sent: Number(await page.textContent("#sent")),
    accepted: Number(await page.textContent("#accepted")),
    dupRedis: Number(await page.textContent("#s-dup-redis")),
    dupDb: Number(await page.textContent("#s-dup-db")),
  };
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, "page.png"), fullPage: true });
  return { user, before, after, posts: posts.length, answers, stats: s, page: pageCounters };
});
console.log(JSON.stringify(result));
