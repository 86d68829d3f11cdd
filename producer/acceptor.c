/*
 * acceptor.c - see acceptor.h.
 */
#include "acceptor.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACCEPTOR_FULL_PAUSE_MS 100 /* out of descriptors: let connections close first */

struct acceptor {
    int fd;      /* listening; -1 once stopped */
    int wake[2]; /* a byte on wake[1] ends the thread */
    pthread_t thread;
    int has_thread;
    acceptor_hand_fn hand;
    void *arg;
};

struct acceptor *acceptor_new(const struct sockaddr_in *sa, char *errstr, size_t errsize)
{
    struct acceptor *a = xcalloc(1, sizeof(*a));
    int on = 1;

    a->wake[0] = a->wake[1] = -1;
    a->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (a->fd < 0 || setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(a->fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
        listen(a->fd, SOMAXCONN) != 0 || pipe2(a->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(errstr, errsize, "%s", strerror(errno));
        acceptor_free(a);
        return NULL;
    }
    return a;
}

/* Accept what the backlog holds. 1 when out of descriptors (pause), else 0. */
static int accept_ready(struct acceptor *a)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(a->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (c >= 0) {
            a->hand(a->arg, c, (const struct sockaddr *)&ss, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            log_warn("cannot accept a connection: pausing", "error=\"%s\" pause_ms=%d",
                     strerror(errno), ACCEPTOR_FULL_PAUSE_MS);
            return 1;
        }
        return 0; /* EAGAIN: the backlog is empty */
    }
}

static void *acceptor_main(void *arg)
{
    struct acceptor *a = arg;
    int pause_ms = -1;

    for (;;) {
        struct pollfd p[2] = {{.fd = a->wake[0], .events = POLLIN},
                              {.fd = a->fd, .events = POLLIN}};
        /* While paused, only the wake pipe: the full backlog would wake us at once. */
        int n = poll(p, pause_ms < 0 ? 2 : 1, pause_ms);

        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && p[0].revents)
            break;
        pause_ms = accept_ready(a) ? ACCEPTOR_FULL_PAUSE_MS : -1;
    }
    return NULL;
}

int acceptor_run(struct acceptor *a, acceptor_hand_fn hand, void *arg)
{
    a->hand = hand;
    a->arg = arg;
    if (pthread_create(&a->thread, NULL, acceptor_main, a) != 0)
        return -1;
    a->has_thread = 1;
    return 0;
}

void acceptor_stop(struct acceptor *a)
{
    if (!a)
        return;
    if (a->has_thread) {
        ssize_t w;
        do
            w = write(a->wake[1], "q", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(a->thread, NULL);
        a->has_thread = 0;
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
}

void acceptor_free(struct acceptor *a)
{
    if (!a)
        return;
    acceptor_stop(a);
    for (int i = 0; i < 2; i++)
        if (a->wake[i] >= 0)
            close(a->wake[i]);
    free(a);
}
