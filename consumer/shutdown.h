/*
 * shutdown.h - SIGINT/SIGTERM: the first asks the consumer to finish its
 * batch, store and commit offsets and leave the group; the second exits at
 * once (status 130), for an operator who will not wait. SIGPIPE is ignored:
 * a peer that closed its socket is an I/O error for the module that wrote.
 *
 *   shutdown_install();   if (shutdown_requested()) ...
 */
#ifndef TADAK_SHUTDOWN_H
#define TADAK_SHUTDOWN_H

int shutdown_install(void);
int shutdown_requested(void);

#endif
