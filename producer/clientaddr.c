/*
 * clientaddr.c - CIDR lists and the client behind trusted proxies.
 * See clientaddr.h.
 */
#include "clientaddr.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define ENTRY_MAX 64 /* longer than "[IPv6]:port" can be: junk */

_Static_assert(CLIENTADDR_TEXT_MAX >= INET6_ADDRSTRLEN, "clientaddr text too short");

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4mapped(const unsigned char *a16)
{
    return memcmp(a16, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0;
}

static int prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
    int full = bits / 8, rest = bits % 8;
    unsigned char mask;

    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/*
 * 1 when c has address bits set after its prefix, with net the network it
 * would be, to say so: a typo here trusts the wrong proxies.
 */
static int host_bits_set(const struct clientaddr_cidr *c, int maxbits, char *net, size_t netsize)
{
    unsigned char masked[16] = {0};

    for (int b = c->bits; b < maxbits; b++) {
        if (c->addr[b / 8] & (0x80 >> (b % 8))) {
            memcpy(masked, c->addr, (size_t)(c->bits + 7) / 8);
            if (c->bits % 8)
                masked[c->bits / 8] &= (unsigned char)(0xff << (8 - c->bits % 8));
            inet_ntop(c->family, masked, net, netsize);
            return 1;
        }
    }
    return 0;
}

int clientaddr_cidr_parse(const char *text, struct clientaddr_cidr *out, char *errstr,
                          size_t errsize)
{
    struct clientaddr_cidr c = {0};
    char host[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN];
    const char *slash;
    size_t hostlen;
    int maxbits;

    if (!text || !*text) {
        snprintf(errstr, errsize, "empty address: expected e.g. 10.0.0.0/8 or fd00::/8");
        return -1;
    }
    slash = strchr(text, '/');
    hostlen = slash ? (size_t)(slash - text) : strlen(text);
    if (hostlen == 0 || hostlen >= sizeof(host))
        goto not_an_address;
    memcpy(host, text, hostlen);
    host[hostlen] = '\0';
    c.family = strchr(host, ':') ? AF_INET6 : AF_INET;
    maxbits = c.family == AF_INET6 ? 128 : 32;
    if (inet_pton(c.family, host, c.addr) != 1)
        goto not_an_address;
    c.bits = maxbits;
    if (slash) {
        const char *digits = slash + 1;
        size_t nd = strspn(digits, "0123456789");

        if (nd == 0 || nd > 3 || digits[nd] != '\0') {
            snprintf(errstr, errsize, "\"%.64s\": bad prefix length, expected /0 to /%d", text,
                     maxbits);
            return -1;
        }
        c.bits = 0;
        for (size_t i = 0; i < nd; i++)
            c.bits = c.bits * 10 + (digits[i] - '0');
        if (c.bits > maxbits) {
            snprintf(errstr, errsize, "\"%.64s\": prefix length %d is above %d", text, c.bits,
                     maxbits);
            return -1;
        }
    }
    if (host_bits_set(&c, maxbits, net, sizeof(net))) {
        snprintf(errstr, errsize, "\"%.64s\": host bits set after the prefix (%s/%d?)", text, net,
                 c.bits);
        return -1;
    }
    *out = c;
    return 0;

not_an_address:
    snprintf(errstr, errsize,
             "\"%.64s\": not an IP address or CIDR, expected e.g. 10.0.0.0/8 or fd00::/8", text);
    return -1;
}

int clientaddr_in(const struct clientaddr_cidr *list, size_t n, int family,
                  const unsigned char *addr)
{
    unsigned char v4[4], v6[16];
    int has4 = 0;

    if (family == AF_INET) {
        memcpy(v4, addr, 4);
        memcpy(v6, v4mapped_prefix, 12);
        memcpy(v6 + 12, addr, 4);
        has4 = 1;
    } else if (family == AF_INET6) {
        memcpy(v6, addr, 16);
        if (is_v4mapped(v6)) {
            memcpy(v4, v6 + 12, 4);
            has4 = 1;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == AF_INET && has4 && prefix_match(v4, list[i].addr, list[i].bits))
            return 1;
        if (list[i].family == AF_INET6 && prefix_match(v6, list[i].addr, list[i].bits))
            return 1;
    }
    return 0;
}

/* An IPv4-mapped address becomes the IPv4 one it carries: one client, one address. */
static void set_addr(struct clientaddr *out, int family, const unsigned char *addr)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET6 && is_v4mapped(addr)) {
        family = AF_INET;
        addr += 12;
    }
    out->family = family;
    memcpy(out->addr, addr, family == AF_INET ? 4 : 16);
    inet_ntop(family, out->addr, out->text, sizeof(out->text));
}

/* "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:443". */
static int parse_entry(const char *s, size_t len, struct clientaddr *out)
{
    char buf[ENTRY_MAX];
    const char *port = NULL, *colon;
    unsigned char addr[16];
    int family;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    colon = strchr(buf, ':');
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');

        if (!close)
            return -1;
        *close = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return -1;
        memmove(buf, buf + 1, (size_t)(close - buf));
        family = AF_INET6;
    } else if (colon && !strchr(colon + 1, ':')) {
        buf[colon - buf] = '\0';
        port = colon + 1;
        family = AF_INET;
    } else {
        family = colon ? AF_INET6 : AF_INET;
    }
    if (port) {
        size_t nd = strspn(port, "0123456789");
        int64_t p;

        if (nd == 0 || nd > 5 || port[nd] != '\0' || util_parse_i64(port, &p) != 0 || p > 65535)
            return -1;
    }
    if (inet_pton(family, buf, addr) != 1)
        return -1;
    set_addr(out, family, addr);
    return 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int clientaddr_resolve(const struct sockaddr *peer, const char *x_forwarded_for,
                       const struct clientaddr_cidr *trusted, size_t ntrusted,
                       struct clientaddr *out)
{
    struct clientaddr client, entry;
    const char *xff = x_forwarded_for, *end;

    if (!peer)
        return -1;
    if (peer->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)peer;
        set_addr(&client, AF_INET, (const unsigned char *)&sin->sin_addr);
    } else if (peer->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)peer;
        set_addr(&client, AF_INET6, (const unsigned char *)&sin6->sin6_addr);
    } else {
        return -1;
    }
    /* Only a trusted proxy's header says anything; a client can send any. */
    if (!xff || !clientaddr_in(trusted, ntrusted, client.family, client.addr))
        goto out;
    end = xff + strlen(xff);
    while (end > xff) {
        const char *start = end, *next;

        while (start > xff && start[-1] != ',')
            start--;
        next = start > xff ? start - 1 : xff; /* the comma before this element */
        while (start < end && is_ows(*start))
            start++;
        while (end > start && is_ows(end[-1]))
            end--;
        if (start < end) {
            if (parse_entry(start, (size_t)(end - start), &entry) != 0)
                break; /* junk: whatever is left of it nobody we trust wrote */
            client = entry;
            if (!clientaddr_in(trusted, ntrusted, client.family, client.addr))
                break;
        }
        end = next;
    }
out:
    *out = client;
    return 0;
}

void clientaddr_key(const struct clientaddr *ca, int ipv6_prefix,
                    unsigned char key[CLIENTADDR_KEY_LEN])
{
    int bits = ca->family == AF_INET6 ? ipv6_prefix : 32;

    if (bits < 0)
        bits = 0;
    if (bits > 128)
        bits = 128;
    memset(key, 0, CLIENTADDR_KEY_LEN);
    key[0] = (unsigned char)ca->family;
    memcpy(key + 1, ca->addr, (size_t)bits / 8);
    if (bits % 8)
        key[1 + bits / 8] = (unsigned char)(ca->addr[bits / 8] & (0xff << (8 - bits % 8)));
}
