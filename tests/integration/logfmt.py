"""A strict reader of tadak's logs: one record per line, nothing else.

  ts=2026-11-29T10:00:00.123Z level=info msg="consumer started" topic=votes

A record is ts, level and msg, in that order, then key=value pairs, each key
once. A value is bare (printable ASCII without space, '"', '=' or '\\') or
quoted, with only the escapes \\" \\\\ \\n \\r \\t \\uXXXX and no raw control
character or Unicode line separator inside. The whole log must be UTF-8 and
end with a newline. parse_log() raises LogfmtError naming the first line that
is not such a record.
"""
import json
import re

LEVELS = {"error", "warn", "info", "debug"}
_KEY = r"[a-z_][a-z0-9_.]*"
_BARE = r"[!#-<>-\[\]-~]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f\u0085\u2028\u2029]|\\["\\nrt]|\\u[0-9a-fA-F]{4})*"'
_PAIR = re.compile(rf"({_KEY})=({_BARE}|{_QUOTED})")
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class LogfmtError(AssertionError):
    pass


def parse_line(line):
    """One record as a dict (quoted values decoded)."""
    pairs, pos = [], 0
    while pos < len(line):
        if pairs:
            if line[pos] != " ":
                raise LogfmtError(f"expected a space at {pos}: {line!r}")
            pos += 1
        m = _PAIR.match(line, pos)
        if not m:
            raise LogfmtError(f"no key=value at {pos}: {line!r}")
        key, value = m.group(1), m.group(2)
        pairs.append((key, json.loads(value) if value.startswith('"') else value))
        pos = m.end()
    keys = [k for k, _ in pairs]
    if keys[:3] != ["ts", "level", "msg"] or not line.split(" ", 3)[2].startswith('msg="'):
        raise LogfmtError(f"not ts, level, msg first: {line!r}")
    if len(set(keys)) != len(keys):
        raise LogfmtError(f"a key twice (forged?): {line!r}")
    rec = dict(pairs)
    if not _TS.fullmatch(rec["ts"]) or rec["level"] not in LEVELS:
        raise LogfmtError(f"bad ts or level: {line!r}")
    return rec


def parse_log(data):
    """Every record of a log (bytes)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LogfmtError(f"not UTF-8: {e}") from None
    if text and not text.endswith("\n"):
        raise LogfmtError(f"the last line is cut: {text[-200:]!r}")
    return [parse_line(line) for line in text.split("\n")[:-1]]
