// tests/e2e/edge.mjs - the producer's frontend edge in headless Chromium.
//
//   node tests/e2e/edge.mjs cross PAGE_URL API_BASE OUT_DIR SHOT USER
//       Opens PAGE_URL (served from another origin than API_BASE) and, from
//       that page's script, fetch()es POST API_BASE/votes four times with
//       Content-Type: application/json and an Idempotency-Key (k1, k1 again,
//       k2, k3), reading each answer's status, body and the headers a
//       cross-origin script may only read when the producer exposes them.
//       A fetch the browser blocks ends the run with {"error": ...}.
//   node tests/e2e/edge.mjs token API_BASE TOKEN OUT_DIR SHOT
//       Opens the producer's own vote page with identity on: the token field
//       must show; a click without a token sends nothing; with TOKEN pasted
//       a click is a 202 for the token's user.
//
// Prints one JSON line with what it saw and saves OUT_DIR/SHOT.png. Needs
// Debian's chromium and playwright-core (scripts/setup; TADAK_NODE_DIR).
import path from "node:path";
import { waitFor, withPage } from "./browser.mjs";

const [mode, ...args] = process.argv.slice(2);

async function cross(page, [pageUrl, api, , , user]) {
  await page.goto(pageUrl, { waitUntil: "load" });
  const result = await page.evaluate(async ({ api, user }) => {
    const post = async (key, candidate) => {
      const r = await fetch(api + "/votes", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify({ user_id: user, candidate_id: candidate }),
      });
      const h = (n) => r.headers.get(n);
      return { status: r.status, body: await r.json().catch(() => null),
               replayed: h("Idempotent-Replayed"), retryAfter: h("Retry-After"),
               policy: h("RateLimit-Policy"), rateLimit: h("RateLimit") };
    };
    const answers = [];
    try {
      for (const [key, c] of [["k1", 1], ["k1", 1], ["k2", 2], ["k3", 3]])
        answers.push(await post(key, c));
    } catch (e) {
      answers.push({ error: String(e) });
    }
    document.getElementById("out").textContent = JSON.stringify(answers, null, 1);
    return { origin: location.origin, answers };
  }, { api, user: Number(user) });
  return result;
}

async function token(page, [api, tok]) {
  const posts = [];
  page.on("request", (req) => {
    if (req.method() === "POST" && new URL(req.url()).pathname === "/votes")
      posts.push(req.headers()["authorization"] || "");
  });
  await page.goto(api + "/", { waitUntil: "load" });
  const boxVisible = await page.isVisible("#token-box");
  await page.click("#vote-1");
  const logAfterNoToken = await page.textContent("#log");
  await page.fill("#token", tok);
  await page.click("#vote-2");
  await waitFor("the 202", async () => Number(await page.textContent("#accepted")) >= 1);
  return { boxVisible, logAfterNoToken, posts, user: await page.textContent("#user"),
           accepted: Number(await page.textContent("#accepted")),
           failed: Number(await page.textContent("#failed")) };
}

const [, , outDir, shot] = args;
const result = await withPage(outDir, shot, async (page) => {
  const r = mode === "cross" ? await cross(page, args) : await token(page, args);
  await page.screenshot({ path: path.join(outDir, `${shot}.png`), fullPage: true });
  return r;
}, { height: 700 });
console.log(JSON.stringify(result));
