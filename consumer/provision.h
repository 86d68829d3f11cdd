/*
 * provision.h - `tadak-consumer topics`: create the type's topic (--type:
 * votes by default, or --topic) and its dead-letter topic on purpose, with
 * their partition count; with --types FILE and no --type, --topic or
 * --dlq-topic, every type's (the vote's too), as serve needs them all.
 *
 * The local stack's broker does not create topics on first use (a mistyped
 * name would become a new empty topic), so a deployment creates them once,
 * here or with its own tooling. An existing topic is left as it is and
 * reported with its partition count: running the command twice is harmless.
 *
 *   status = provision_topics(&opts);   0, or 1 with one line on stderr
 */
#ifndef TADAK_PROVISION_H
#define TADAK_PROVISION_H

#include "options.h"

int provision_topics(const struct consumer_opts *o);

#endif
