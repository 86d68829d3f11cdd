/*
 * shutdown.c - the SIGINT/SIGTERM flag of both programs. See shutdown.h.
 * The handler only sets a flag (and _exit()s, which is async-signal-safe,
 * on the second signal).
 */
#include "shutdown.h"
#include "util.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    if (stop_requested)
        _exit(SHUTDOWN_EXIT_STATUS);
    stop_requested = 1;
}

int shutdown_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    /*
     * hiredis writes with plain write(): a Redis that vanished mid-burst must
     * be an EPIPE its caller handles (Redis down), not a signal that kills us.
     */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -1;
    return 0;
}

int shutdown_requested(void)
{
    return stop_requested != 0;
}

/* Naps of SHUTDOWN_NAP_MS: a SIGTERM during a long wait still stops us at once. */
#define SHUTDOWN_NAP_MS 100

int shutdown_nap_until(int64_t until_ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = SHUTDOWN_NAP_MS * 1000000L};
    int64_t left;

    while (!stop_requested && (left = until_ms - util_now_ms()) > 0) {
        if (left < SHUTDOWN_NAP_MS)
            ts.tv_nsec = left * 1000000L;
        nanosleep(&ts, NULL);
    }
    return stop_requested != 0;
}
