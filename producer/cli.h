/*
 * cli.h - the publishing subcommands of tadak-producer.
 *
 *   send   --user U --candidate C [--repeat N]   one vote, or a burst of N clicks
 *   replay FILE|-                                one vote per JSON line
 *   load   --users N --dup-factor D [--rate R] [--seed S] [--candidates K]
 *
 * With --type T (a type of --types), the same for events of T, to T's
 * topic: send takes the fields as --field NAME=VALUE (checked as the HTTP
 * body would be), replay parses each line as T, load maps its (user,
 * candidate) stream onto T's fields (loadgen.h).
 *
 * Each publishes straight to Kafka in the event format of `serve`, waits for
 * every delivery report and prints {"sent":N,"acked":N,"failed":N} on
 * stdout (replay adds "bad_lines":N). Exit status: 0 all acknowledged, 1 a
 * delivery failed or (replay) a line was bad or the input could not be
 * read, 2 a usage or setup error. replay reads a line into a fixed 1 MiB
 * buffer: a longer one is a bad line, skipped as it streams by. Their
 * options are in options.h; argv[0] is the subcommand name.
 */
#ifndef TADAK_CLI_H
#define TADAK_CLI_H

int cli_send(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_load(int argc, char **argv);

#endif
