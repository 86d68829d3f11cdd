/*
 * shutdown.h - SIGINT/SIGTERM for both programs, one behaviour.
 *
 * The first signal only asks to stop: the consumer finishes its batch,
 * commits its offsets and leaves the group; the producer's `serve` stops
 * accepting, answers what is in flight and flushes Kafka. The second signal
 * exits at once with status 130 (128 + SIGINT, what a shell reports for an
 * interrupted program), for an operator who will not wait: nothing is
 * flushed, and what was not acknowledged is retried by its client or
 * replayed from Kafka. SIGPIPE is ignored: a peer that closed its socket is
 * an I/O error for the module that wrote, not a signal that kills us.
 *
 *   shutdown_install();   0 / -1 (sigaction failed)
 *   if (shutdown_requested()) ...
 *   shutdown_nap_until(t);  sleep until util_now_ms() >= t, or a signal: 1 then
 */
#ifndef TADAK_SHUTDOWN_H
#define TADAK_SHUTDOWN_H

#include <stdint.h>

#define SHUTDOWN_EXIT_STATUS 130 /* the second signal's exit status */

int shutdown_install(void);
int shutdown_requested(void);
int shutdown_nap_until(int64_t until_ms);

#endif
