/*
 * serve.h - `tadak-producer serve`: the HTTP frontend's lifecycle.
 *
 * Loads its options (options.h), starts the publisher (with its delivery
 * report thread) and the HTTP server, waits for SIGINT/SIGTERM, then drains:
 * stop accepting, answer what is in flight, flush Kafka, exit 0. A second
 * signal exits at once with status 130 (shutdown.h). argv[0] is the
 * subcommand name.
 */
#ifndef TADAK_SERVE_H
#define TADAK_SERVE_H

int serve_main(int argc, char **argv);

#endif
