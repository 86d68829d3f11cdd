/*
 * test_conncap.c - connections per client address: an address gets its cap
 * and no more, a close makes room (also one that was refused), addresses
 * are independent (IPv4-mapped IPv6 is its IPv4 address), an exempt address
 * (a trusted proxy) is never counted, and entries go when their last
 * connection does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conncap.h"

static struct sockaddr_storage peer(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static int exempt_proxy(void *arg, const struct sockaddr *p)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)p;
    struct in_addr proxy;

    (void)arg;
    inet_pton(AF_INET, "10.0.0.1", &proxy);
    return p->sa_family == AF_INET && sin->sin_addr.s_addr == proxy.s_addr;
}

static void test_cap_per_address(void **state)
{
    struct conncap *cc = conncap_new(3, exempt_proxy, NULL);
    struct sockaddr_storage a = peer("192.0.2.1"), a6 = peer("::ffff:192.0.2.1"),
                            b = peer("2001:db8::1"), p = peer("10.0.0.1");

    (void)state;
    assert_int_equal(conncap_open(cc, SA(a)), 1);
    assert_int_equal(conncap_open(cc, SA(a6)), 1); /* the same client */
    assert_int_equal(conncap_open(cc, SA(a)), 1);
    assert_int_equal(conncap_open(cc, SA(a)), 0); /* the fourth */
    assert_int_equal(conncap_open(cc, SA(a6)), 0);
    assert_int_equal(conncap_count(cc, SA(a)), 5);
    /* Another address is not affected. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(conncap_open(cc, SA(b)), 1);
    assert_int_equal(conncap_open(cc, SA(b)), 0);
    /* The proxy is never capped, never counted. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(conncap_open(cc, SA(p)), 1);
    assert_int_equal(conncap_count(cc, SA(p)), 0);
    for (int i = 0; i < 100; i++)
        conncap_close(cc, SA(p));
    /* Closes (the refused ones too) make room again. */
    conncap_close(cc, SA(a));
    conncap_close(cc, SA(a));
    assert_int_equal(conncap_open(cc, SA(a)), 0); /* 4 open: still over */
    conncap_close(cc, SA(a));
    conncap_close(cc, SA(a6));
    assert_int_equal(conncap_open(cc, SA(a)), 1); /* 3 open */
    for (int i = 0; i < 3; i++)
        conncap_close(cc, SA(a));
    assert_int_equal(conncap_count(cc, SA(a)), 0);
    conncap_close(cc, SA(a)); /* one close too many changes nothing */
    assert_int_equal(conncap_count(cc, SA(a)), 0);
    assert_int_equal(conncap_count(cc, SA(b)), 4);
    conncap_free(cc); /* b's entry freed here: ASan says if not */
}

static void test_not_an_ip_client(void **state)
{
    struct conncap *cc = conncap_new(1, NULL, NULL);
    struct sockaddr_storage un;

    (void)state;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(conncap_open(cc, SA(un)), 1);
    assert_int_equal(conncap_open(cc, SA(un)), 1);
    conncap_close(cc, SA(un));
    conncap_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_per_address),
        cmocka_unit_test(test_not_an_ip_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
