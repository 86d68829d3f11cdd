// tests/e2e/cards.mjs - which candidates the vote page (GET /) shows.
//
//   node tests/e2e/cards.mjs BASE_URL OUT_DIR SHOT [OTHER_ID]
//
// Opens the page, waits for its first finished refresh (GET /tallies and
// /stats answered and drawn), and prints one JSON line: the cards in page
// order with the tally each shows, the note under them (#note, or null),
// the "votes recorded" stat and whether the field for another candidate id
// is visible. With OTHER_ID and that field shown, votes for that id through
// it, waits for the answer and adds the cards seen after it. Saves OUT_DIR/SHOT.png.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { waitFor, withPage } from "./browser.mjs";

const [base, outDir, shot, other] = process.argv.slice(2);

// [[id, tally], ...] in the order the page shows them.
const cards = (page) =>
  page.$$eval("#cands .card", (els) =>
    els.map((el) => {
      const n = el.querySelector(".n");
      return [Number(n.id.replace("tally-", "")), Number(n.textContent)];
    }));

const result = await withPage(outDir, shot, async (page) => {
  const refreshes = () => page.evaluate(() => Number(document.body.dataset.refreshes));
  await page.goto(base + "/", { waitUntil: "load" });
  await waitFor("the first refresh", async () => (await refreshes()) >= 1);
  const note = await page.$("#note");
  const r = {
    cards: await cards(page),
    note: note && (await note.isVisible()) ? (await note.textContent()).trim() : null,
    total: await page.textContent("#total"),
    otherVisible: await page.isVisible("#other"),
  };
  if (other && r.otherVisible) {
    await page.fill("#other-id", other);
    await page.click("#vote-other");
    await waitFor("the answer", async () =>
      Number(await page.textContent("#accepted")) + Number(await page.textContent("#failed")) >= 1);
    r.accepted = Number(await page.textContent("#accepted"));
    r.cardsAfterVote = await cards(page);
  }
  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, `${shot}.png`), fullPage: true });
  return r;
});
console.log(JSON.stringify(result));
