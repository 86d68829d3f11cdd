"""The first hour (#26): what a new user mistypes gets an answer that says
what was meant, and a file that cannot be read says why. Each test fails on
a build that only says "unknown option" / prints usage / drops the reason."""
from conftest import REPO, run


def test_mistyped_long_options_name_the_meant_one(bins):
    cases = [
        ([bins.consumer, "--grup", "g"], "unknown option --grup (did you mean --group?"),
        ([bins.consumer, "--from-begining"],
         "unknown option --from-begining (did you mean --from-beginning?"),
        ([bins.producer, "load", "--candidate", "1-4"],
         "unknown option --candidate (did you mean --candidates?"),
        ([bins.producer, "serve", "--listn", "127.0.0.1:1"],
         "unknown option --listn (did you mean --listen?"),
    ]
    for args, want in cases:
        p = run(args, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert want in p.stderr, (args, p.stderr)
    p = run([bins.consumer, "--zzzz", "1"], timeout=30)
    assert p.returncode == 2 and "did you mean" not in p.stderr, p.stderr


def test_unknown_stack_command_says_which_and_what_was_meant():
    p = run([REPO / "scripts" / "stack", "stop"], timeout=30)
    assert p.returncode == 2
    assert 'unknown command "stop"' in p.stderr and "did you mean down" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr  # one line, not the usage


def test_replay_of_a_missing_file_says_why(bins):
    p = run([bins.producer, "replay", "/nonexistent/acks.jsonl"], timeout=30)
    assert p.returncode != 0
    assert "cannot open /nonexistent/acks.jsonl: No such file or directory" in p.stderr, p.stderr
