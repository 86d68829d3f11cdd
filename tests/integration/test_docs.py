"""The README's configuration reference says what --help says, both ways.

For every command, each option its --help lists has exactly one row in the
README section that applies to the command (same environment variable, same
default, same short flag, same placeholder), and each row there is an option
of that command.
No services needed.
"""
import re
import subprocess

import pytest

from conftest import REPO, Bins

COMMANDS = [("tadak-producer", "serve"), ("tadak-producer", "send"),
            ("tadak-producer", "replay"), ("tadak-producer", "load"), ("tadak-consumer",)]

HELP_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?\s*--(?P<name>[a-z][a-z0-9-]*)\b(?P<rest>.*)$")


def help_options(cmd):
    opts = {}
    for line in Bins().help_options(*cmd):
        m = HELP_LINE.match(line)
        if not m or m["name"] == "help":
            continue
        env = re.search(r"\[env ([A-Z0-9_]+)\]", m["rest"])
        default = re.search(r"\(default ([^)]*)\)$", m["rest"])
        meta = re.match(r"^ ([A-Z][A-Z:=]*)\b", m["rest"])
        opts[m["name"]] = {"short": m["short"], "env": env and env[1],
                           "default": default and default[1], "meta": meta and meta[1]}
    return opts


def reference_sections():
    text = (REPO / "README.md").read_text()
    m = re.search(r"^## Configuration reference\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, "README has no '## Configuration reference' section"
    sections = []
    for part in re.split(r"^### ", m[1], flags=re.M)[1:]:
        heading, body = part.split("\n", 1)
        words = {w for quoted in re.findall(r"`([^`]+)`", heading) for w in quoted.split()}
        rows = {}
        for line in body.splitlines():
            if not line.startswith("| `--"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            name = re.match(r"`--([a-z][a-z0-9-]*)", cells[0])[1]
            assert name not in rows, f"--{name} twice under '{heading}'"
            rows[name] = {"flag": cells[0], "env": cells[1].strip("`"),
                          "default": cells[2].strip("`")}
        sections.append((heading, words, rows))
    assert sections
    return sections


def rows_for(cmd, sections):
    rows = {}
    for heading, words, srows in sections:
        if set(cmd) <= words:
            for name, row in srows.items():
                assert name not in rows, f"--{name} documented twice for {' '.join(cmd)}"
                rows[name] = row
    return rows


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_reference_matches_help(cmd):
    opts = help_options(cmd)
    rows = rows_for(cmd, reference_sections())
    label = " ".join(cmd)
    missing = sorted(set(opts) - set(rows))
    extra = sorted(set(rows) - set(opts))
    assert not missing, f"{label}: --help lists {missing}, the README reference does not"
    assert not extra, f"{label}: the README documents {extra}, --help does not list them"
    for name, o in opts.items():
        row = rows[name]
        assert row["env"] == (o["env"] or "—"), f"{label} --{name}: env {row['env']!r} vs {o}"
        if o["default"] is not None:
            assert row["default"] == o["default"], f"{label} --{name}: default {row} vs {o}"
        if o["short"]:
            assert f"`-{o['short']}`" in row["flag"], f"{label} --{name}: short flag -{o['short']}"
        # The placeholder: what the value is (URL, FILE, HOST:PORT, N...), the same in both.
        shown = re.match(r"`--[a-z0-9-]+(?: ([^`]+))?`", row["flag"])[1]
        assert shown == o["meta"], f"{label} --{name}: README says {shown!r}, --help {o['meta']!r}"


def test_every_reference_row_belongs_to_a_command():
    sections = reference_sections()
    for heading, words, rows in sections:
        assert any(set(cmd) <= words for cmd in COMMANDS), f"'{heading}' names no command"
        assert rows or "replay" in heading, f"'{heading}' has no option rows"


def test_every_stack_command_is_in_the_readme_table():
    """`scripts/stack help` lists its commands; the README's table of them names
    each one (`logs` was missing)."""
    p = subprocess.run([REPO / "scripts" / "stack", "help"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    verbs = set(re.findall(r"^\s*scripts/stack ([a-z-]+)", p.stdout, re.M))
    assert {"up", "down", "env", "logs"} <= verbs, p.stdout
    text = (REPO / "README.md").read_text()
    table = re.search(r"^\| command \| what it does \|\n((?:\|.*\n)+)", text, re.M)
    assert table, "README has no table of scripts/stack commands"
    documented = {w for cell in re.findall(r"`([^`]+)`", table[1]) for w in cell.split()}
    missing = sorted(verbs - documented)
    assert not missing, f"scripts/stack commands missing from the README table: {missing}"
