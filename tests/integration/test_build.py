"""The binaries are built hardened: FORTIFY_SOURCE, stack protector, PIE,
full RELRO (-z relro -z now) for the release build; the sanitizer build the
tests run keeps all but FORTIFY (ASan checks the same accesses, and more).
No services needed.
"""
import re
import subprocess
import tempfile

from conftest import REPO, Bins

RELEASE_CFLAGS = ("-D_FORTIFY_SOURCE=2", "-fstack-protector-strong", "-fPIE")
LDFLAGS = ("-pie", "-Wl,-z,relro,-z,now")


def dry_run(*args):
    """The commands `make` would run (and print) for a build from scratch."""
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run(["make", "-n", "-B", f"BUILD={d}/b", *args, f"{d}/b/tadak-producer"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    compiles = [ln for ln in p.stdout.splitlines() if " -c " in ln and "producer/" in ln]
    links = [ln for ln in p.stdout.splitlines() if re.search(r"-o \S*/tadak-producer(\s|$)", ln)]
    assert compiles and links, p.stdout[-2000:]
    return compiles, links


def test_release_build_shows_its_hardening():
    compiles, links = dry_run()
    for line in compiles:
        for flag in RELEASE_CFLAGS:
            assert flag in line.split(), (flag, line)
    for flag in LDFLAGS:
        assert flag in links[-1].split(), (flag, links[-1])


def test_sanitizer_build_flags():
    compiles, links = dry_run("SANITIZE=1")
    for line in compiles:
        assert "-fstack-protector-strong" in line.split() and "-fPIE" in line.split(), line
        assert "-D_FORTIFY_SOURCE=2" not in line.split(), line
    for flag in LDFLAGS:
        assert flag in links[-1].split(), (flag, links[-1])


def test_binaries_under_test_are_pie_with_full_relro():
    bins = Bins()
    for exe in (bins.producer, bins.consumer):
        head = subprocess.run(["readelf", "-h", "-l", "-d", exe], capture_output=True,
                              text=True, check=True).stdout
        assert re.search(r"Type:\s+DYN", head), f"{exe} is not position independent"
        assert "GNU_RELRO" in head, f"{exe} has no RELRO segment"
        assert re.search(r"\(FLAGS\)\s+.*BIND_NOW", head) or \
            re.search(r"\(FLAGS_1\)\s+.*NOW", head), f"{exe} resolves symbols lazily"
        syms = subprocess.run(["nm", "-D", exe], capture_output=True, text=True,
                              check=True).stdout
        assert "__stack_chk_fail" in syms, f"{exe} has no stack protector"
