/*
 * fatal_shim.c - a test hook from outside: test_producer_fatal.py builds it
 * into a shared object and LD_PRELOADs it into `tadak-producer serve`. It is
 * never part of tadak, and tadak knows nothing of it.
 *
 * It remembers the newest rd_kafka_t the process created and, on SIGUSR2,
 * raises a fatal error in it with rd_kafka_test_fatal_error() - the error
 * librdkafka's idempotent producer raises now and then after a partition
 * leader change - so the real process on the real broker can be watched
 * recovering from it. SIGUSR2 is blocked before main() runs (every thread
 * inherits the mask) and taken by one thread of the shim's own with sigwait():
 * librdkafka is never called from a signal handler.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

typedef rd_kafka_t *(*new_fn)(rd_kafka_type_t, rd_kafka_conf_t *, char *, size_t);
typedef void (*destroy_fn)(rd_kafka_t *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rd_kafka_t *newest; /* under lock */
static sigset_t usr2;

rd_kafka_t *rd_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                         size_t errstr_size)
{
    new_fn real = (new_fn)dlsym(RTLD_NEXT, "rd_kafka_new");
    rd_kafka_t *rk = real(type, conf, errstr, errstr_size);

    if (rk) {
        pthread_mutex_lock(&lock);
        newest = rk;
        pthread_mutex_unlock(&lock);
    }
    return rk;
}

void rd_kafka_destroy(rd_kafka_t *rk)
{
    destroy_fn real = (destroy_fn)dlsym(RTLD_NEXT, "rd_kafka_destroy");

    pthread_mutex_lock(&lock);
    if (newest == rk)
        newest = NULL;
    pthread_mutex_unlock(&lock);
    real(rk);
}

static void *waiter(void *arg)
{
    int sig;

    (void)arg;
    for (;;) {
        if (sigwait(&usr2, &sig) != 0)
            continue;
        pthread_mutex_lock(&lock);
        if (newest)
            rd_kafka_test_fatal_error(newest, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                      "fatal_shim: SIGUSR2");
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

__attribute__((constructor)) static void fatal_shim_init(void)
{
    pthread_t t;

    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    if (pthread_create(&t, NULL, waiter, NULL) == 0)
        pthread_detach(t);
}
