/*
 * page.h - the vote page served at GET /: one self-contained HTML document
 * (inline CSS and JS, no external assets) to double-click at the pipeline.
 *
 * Every click event on a candidate's button sends one real POST /votes -
 * no debouncing, on purpose - and the page polls GET /tallies and GET /stats
 * about once a second to show that the clicks became exactly one vote.
 * Element ids the browser test relies on: vote-N, tally-N (N = 1..4), user,
 * new-user, sent, accepted, and body[data-refreshes] (counts finished polls).
 *
 * With identity on (a JWT is required, auth.h) the page shows a field to
 * paste a token (id token, in token-box) and sends it as Authorization:
 * Bearer, leaving user_id to the token.
 *
 * The buttons are the configured candidates (--candidates), or 1..4:
 *   char *html = page_render(ids, n, identity);   malloc'd; n == 0 means 1, 2, 3, 4
 */
#ifndef TADAK_PAGE_H
#define TADAK_PAGE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_MAX_CANDIDATES 100 /* buttons on the page; a longer list is cut */

extern const char page_html[];
char *page_render(const int64_t *ids, size_t n, int identity);

#endif
