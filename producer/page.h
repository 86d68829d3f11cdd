/*
 * page.h - the vote page served at GET /: one self-contained HTML document
 * (inline CSS and JS, no external assets) to double-click at the pipeline.
 *
 * Every click event on a candidate's button sends one real POST /votes -
 * no debouncing, on purpose - and the page polls GET /tallies and GET /stats
 * about once a second to show that the clicks became exactly one vote.
 * Element ids the browser tests rely on: vote-N, tally-N (N a candidate
 * shown), cands (the cards), note, other (other-id, vote-other), user,
 * new-user, sent, accepted, total, and body[data-refreshes] (counts
 * finished polls).
 *
 * With identity on (a JWT is required, auth.h) the page shows a field to
 * paste a token (id token, in token-box) and sends it as Authorization:
 * Bearer, leaving user_id to the token.
 *
 * The cards are the ballot (--candidates) when one is set. Without one
 * (n == 0) they are the candidates GET /tallies reports, a card made as
 * each first appears, plus a field to vote for any other id, so no
 * recorded vote is off the page. Either way a line (note) counts the
 * votes no card shows: beyond /tallies' top N, or outside the ballot.
 *   char *html = page_render(ids, n, identity);   malloc'd
 */
#ifndef TADAK_PAGE_H
#define TADAK_PAGE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_MAX_CANDIDATES 100 /* buttons on the page; a longer list is cut */

extern const char page_html[];
char *page_render(const int64_t *ids, size_t n, int identity);

#endif
