/*
 * clientaddr.h - which client a request comes from: the peer's address, or,
 * behind proxies the operator trusts, the address they say they got it from.
 *
 * X-Forwarded-For is a list every hop appends to, so only its right end is
 * written by proxies we trust; anything left of the first untrusted entry
 * may be made up by the client. clientaddr_resolve() therefore believes the
 * header only when the peer itself is a trusted proxy, walks it from the
 * right past the entries that are trusted proxies too, and takes the first
 * one that is not. If all of them are trusted it takes the leftmost. An
 * entry that is not an address ("unknown", junk, a name) stops the walk:
 * the last address found so far is the client (else the peer), since what
 * lies beyond it was not written by anyone we trust. Empty list elements
 * (", ,") are skipped. An entry may carry a port when that is unambiguous:
 * "1.2.3.4:5678" and "[2001:db8::1]:443" (or "[2001:db8::1]") give the
 * address, the port dropped; a bare IPv6 address is taken whole, its colons
 * are never a port. Zone ids ("fe80::1%eth0") are junk.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, how a dual-stack socket sees
 * an IPv4 peer) is reported as the IPv4 address it carries, so one client
 * has one address, and it is in an IPv4 CIDR that holds a.b.c.d; an IPv4
 * address is likewise in an IPv6 CIDR holding its mapped form.
 *
 * CIDRs are written "10.0.0.0/8", "fd00::/8", or a bare address ("::1" is
 * ::1/128). Host bits set after the prefix ("10.0.0.1/8") are refused, with
 * the network it probably meant in the error.
 *
 *   struct clientaddr_cidr trusted[8];
 *   clientaddr_cidr_parse("10.0.0.0/8", &trusted[0], err, sizeof err)  0 / -1
 *   clientaddr_in(trusted, n, AF_INET, addr)     1: addr is in one of them
 *   clientaddr_resolve(peer_sockaddr, xff_or_NULL, trusted, n, &client);
 *   client.family, client.addr (4 or 16 bytes), client.text (inet_ntop)
 *   clientaddr_key(&client, ipv6_prefix, key)    the rate limit's bucket key
 *
 * One IPv6 host usually holds a whole /64 (SLAAC, privacy addresses): keyed
 * by its full address it would get a fresh bucket per request, and push
 * other clients out of the table. clientaddr_key() therefore keys an IPv6
 * client by its first ipv6_prefix bits (the rest zeroed), an IPv4 client
 * (IPv4-mapped ones included) by its whole address.
 */
#ifndef TADAK_CLIENTADDR_H
#define TADAK_CLIENTADDR_H

#include <stddef.h>

#define CLIENTADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
#define CLIENTADDR_KEY_LEN  17 /* the family, then 16 address bytes */

struct sockaddr;

struct clientaddr_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* the network; 4 bytes used for AF_INET */
    int bits;               /* prefix length: 0..32 or 0..128 */
};

struct clientaddr {
    int family;                     /* AF_INET or AF_INET6 */
    unsigned char addr[16];         /* 4 bytes used for AF_INET, the rest zero */
    char text[CLIENTADDR_TEXT_MAX]; /* printable, from inet_ntop */
};

int clientaddr_cidr_parse(const char *text, struct clientaddr_cidr *out, char *errstr,
                          size_t errsize);
/* 1 when addr (4 bytes for AF_INET, 16 for AF_INET6) is in one of the n CIDRs, else 0. */
int clientaddr_in(const struct clientaddr_cidr *list, size_t n, int family,
                  const unsigned char *addr);
/*
 * The client of a request from peer (AF_INET or AF_INET6) carrying
 * x_forwarded_for (NULL: none; several header values joined with ", ").
 * 0, or -1 when peer is NULL or of another family (*out untouched).
 */
int clientaddr_resolve(const struct sockaddr *peer, const char *x_forwarded_for,
                       const struct clientaddr_cidr *trusted, size_t ntrusted,
                       struct clientaddr *out);
/* The bytes a client is counted by: IPv6 cut to ipv6_prefix bits (0..128), IPv4 whole. */
void clientaddr_key(const struct clientaddr *ca, int ipv6_prefix,
                    unsigned char key[CLIENTADDR_KEY_LEN]);

#endif
