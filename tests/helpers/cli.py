"""``bench`` in this process: its exit code and output, and the shape of a user error."""

from __future__ import annotations

import re

import pytest

from bench.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bench args`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    code = exit_info.value.code
    return 0 if code is None else code, out.out, out.err


# `bench run`'s own first lines ("[12:00:00] bench run collapse/quick: starting ...", then its
# header) come before any check, so that a log shows at once what started.
STARTED = re.compile(r"^\[\d\d:\d\d:\d\d\] bench run \S+( \(its default scale\))?: ")


def one_line(err: str) -> str:
    """The only line of ``err`` besides ``bench run``'s starting line and header: a user error
    is one line on stderr, never a traceback."""
    lines = [ln for ln in err.strip().splitlines() if not STARTED.match(ln)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def assert_user_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    """``bench args`` exits with code 2 and one line holding every needle."""
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    line = one_line(err)
    for needle in needles:
        assert needle in line, line
