/*
 * main.c - tadak-producer: dispatch a subcommand to its module.
 *
 *   serve   HTTP frontend (serve.c)     send / replay / load   CLI (cli.c)
 */
#include "cli.h"
#include "serve.h"

#include <stdio.h>
#include <string.h>

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", serve_main, "HTTP API: POST /votes, answered once the broker acknowledged"},
    {"send", cli_send, "publish one vote, or a burst of N copies"},
    {"replay", cli_replay, "publish the votes of a JSON-lines file (or stdin)"},
    {"load", cli_load, "publish a deterministic shuffled stream of N x D votes"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: tadak-producer COMMAND [options]   (COMMAND --help for details)\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tadak-producer: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
