/*
 * conncap.h - connections per client address: the cap that keeps a few
 * hosts from holding every connection slot of the server.
 *
 * libmicrohttpd has a per-address limit of its own, but it caps every
 * address alike; behind a reverse proxy every client shares the proxy's
 * address, and capping it would cap the whole site. So the HTTP server
 * counts here instead: conncap_open() when a connection is accepted (0: it
 * is over the cap, shut it down unanswered), conncap_close() when it closes
 * (every open, admitted or not, has its close). Addresses for which the
 * caller's `exempt` says yes (a --trusted-proxy) are never counted.
 *
 * The counts live in a hash table of fixed size (CONNCAP_BUCKETS chains)
 * whose entries are the addresses with open connections, so memory is
 * bounded by the connections the server holds. Thread-safe (one mutex).
 *
 *   cc = conncap_new(per_address, exempt_fn, exempt_arg);
 *   if (!conncap_open(cc, peer_sockaddr)) refuse the connection;
 *   conncap_close(cc, peer_sockaddr);
 *   conncap_count(cc, peer_sockaddr);   open connections of that address
 *   conncap_free(cc);
 */
#ifndef TADAK_CONNCAP_H
#define TADAK_CONNCAP_H

#include <stddef.h>

#define CONNCAP_BUCKETS 4096

struct sockaddr;
struct conncap;

/* 1 when connections from peer are not capped. */
typedef int (*conncap_exempt_fn)(void *arg, const struct sockaddr *peer);

struct conncap *conncap_new(unsigned int per_address, conncap_exempt_fn exempt, void *arg);
void conncap_free(struct conncap *cc);
int conncap_open(struct conncap *cc, const struct sockaddr *peer);
void conncap_close(struct conncap *cc, const struct sockaddr *peer);
unsigned int conncap_count(struct conncap *cc, const struct sockaddr *peer);

#endif
