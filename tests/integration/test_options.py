"""The options both programs have say the same in both --help outputs.

The Kafka, Redis, PostgreSQL, log-level and key-prefix rows are defined once
(common/sharedopts.h); here every command of tadak-producer that lists one of
them (serve, send, replay, load) must show it exactly as tadak-consumer does:
the same flag and short form, placeholder, environment variable and help text,
and the same default except where a program gives its own (the Redis and
PostgreSQL URLs: the consumer needs both and defaults to the local servers,
serve runs without them). An option both programs list that is not one of the
shared rows is a failure too: it is a copy waiting to drift.
No services needed.
"""
import re

import pytest

from conftest import Bins

SHARED = {"brokers", "topic", "kafka", "log-level", "key-prefix", "redis-url", "database-url",
          "types", "type"}
EVERY_COMMAND = {"brokers", "topic", "kafka", "log-level", "types", "type"}
SERVE = SHARED - {"type"}  # serve takes every type of the file
OWN_DEFAULT = {"redis-url", "database-url"}
PRODUCER_COMMANDS = ["serve", "send", "replay", "load"]

# config_usage(): "  %-30s %s" of the flag column and the text, one line per option.
HELP_LINE = re.compile(
    r"^  (?P<flag>(?:-\w, |    )--(?P<name>[a-z][a-z0-9-]*)(?: [A-Z:=]+)?)\s+(?P<text>.*)$")
TEXT = re.compile(r"^(?P<help>.*?)(?: \(default (?P<default>[^)]*)\))?$")


def help_rows(*argv):
    rows = {}
    for line in Bins().help_options(*argv):
        m = HELP_LINE.match(line)
        if not m or m["name"] == "help":
            continue
        t = TEXT.match(m["text"])
        rows[m["name"]] = {"flag": m["flag"], "help": t["help"], "default": t["default"]}
    return rows


@pytest.fixture(scope="module")
def consumer():
    return help_rows("tadak-consumer")


@pytest.mark.parametrize("command", PRODUCER_COMMANDS)
def test_shared_rows_agree(command, consumer):
    producer = help_rows("tadak-producer", command)
    expected = SERVE if command == "serve" else EVERY_COMMAND
    for name in sorted(expected):
        assert name in consumer, f"tadak-consumer --help has no --{name}"
        assert name in producer, f"tadak-producer {command} --help has no --{name}"
    for name in sorted(set(producer) & set(consumer)):
        p, c = producer[name], consumer[name]
        where = f"--{name}: tadak-producer {command} vs tadak-consumer"
        assert name in SHARED, f"{where}: both list it, but it is no shared row (sharedopts.h)"
        assert p["flag"] == c["flag"], f"{where}: flag {p['flag']!r} vs {c['flag']!r}"
        assert p["help"] == c["help"], f"{where}: help\n  {p['help']!r}\nvs\n  {c['help']!r}"
        if name not in OWN_DEFAULT:
            assert p["default"] == c["default"], f"{where}: default {p['default']} vs {c['default']}"


def test_own_defaults_are_the_documented_ones(consumer):
    """The two rows whose default is the program's own keep the defaults they had."""
    serve = help_rows("tadak-producer", "serve")
    assert consumer["redis-url"]["default"] == "redis://127.0.0.1:6379/0"
    assert consumer["database-url"]["default"] == "postgresql://localhost/tadak"
    assert serve["redis-url"]["default"] is None
    assert serve["database-url"]["default"] is None
