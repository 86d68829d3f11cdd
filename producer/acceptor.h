/*
 * acceptor.h - the HTTP server's listening socket and the thread that
 * accepts on it, handing each connection to libmicrohttpd
 * (MHD_add_connection) through a callback.
 *
 * Why not let libmicrohttpd listen: stopping a thread-pool epoll daemon from
 * accepting (MHD_quiesce_daemon) races with its own workers in 0.9.75 -
 * both take the listening socket out of a worker's epoll set, and the loser
 * aborts the process ("Failed to remove listen FD from epoll set", seen on a
 * SIGTERM under keep-alive load). Here stopping is ours: wake the thread,
 * join it, close the socket; new clients are refused from then on. Binding
 * here also makes a taken port one error line, not libmicrohttpd's "port 0"
 * warning before it.
 *
 *   a = acceptor_new(&sockaddr_in, err, sizeof err);   bound and listening, or NULL
 *   acceptor_run(a, hand, arg);       0 / -1; hand(arg, fd, addr, len) owns fd
 *   acceptor_stop(a);                 accept no more, close the socket (twice: no-op)
 *   acceptor_free(a);                 stops first
 */
#ifndef TADAK_ACCEPTOR_H
#define TADAK_ACCEPTOR_H

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

struct acceptor;

typedef void (*acceptor_hand_fn)(void *arg, int fd, const struct sockaddr *addr, socklen_t len);

struct acceptor *acceptor_new(const struct sockaddr_in *sa, char *errstr, size_t errsize);
int acceptor_run(struct acceptor *a, acceptor_hand_fn hand, void *arg);
void acceptor_stop(struct acceptor *a);
void acceptor_free(struct acceptor *a);

#endif
