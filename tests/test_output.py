"""Output nobody reads, tried with real `bench` processes: a closed stdout (`bench run ... >&-`)
and a reader that went away (`bench ls models | head -1`) give no traceback, and the exit code
still says how the runs went. Text is read as UTF-8 whatever the locale, and a path no file
system takes is one line (exit code 2).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.plugins import FAULTY_PLUGIN, install
from tests.helpers.processes import TIMEOUT_S
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]


def _suite(name: str, models: list[str]) -> str:
    return suite_toml(
        name,
        models=models,
        seeds=[0],
        metrics=["neg_elbo"],
        model_params={"mlp-vae": {"hidden": 8, "latent_dim": 2}},
        budget={"epochs": 1, "batch_size": 100, **FEW_DIGITS},
        eval={"iw_samples": 2, "batch_size": 100},
    )


@pytest.fixture
def env(workdir):
    """A `bench` process's environment: this tree first, and the faulty plugin installed."""
    install(workdir / "site", "bench_faulty", FAULTY_PLUGIN)
    out = dict(os.environ)
    path = [str(workdir / "site"), str(REPO), str(REPO / "plugins"), out.get("PYTHONPATH", "")]
    out["PYTHONPATH"] = os.pathsep.join(path)
    out["BENCH_CACHE_DIR"] = str(workdir / "cache")
    return out


def bench(env: dict, *args: str, stdout: int | None) -> subprocess.CompletedProcess:
    """``bench args`` with ``stdout`` as its descriptor 1 (None: closed, as by ``>&-``)."""
    command = [sys.executable, "-m", "bench.cli", *args]
    if stdout is None:  # the shell's own way to close it
        command = ["sh", "-c", 'exec "$@" >&-', "sh", *command]
    return subprocess.run(
        command, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT_S
    )


def cut_off() -> int:
    """The write end of a pipe whose reader has gone: the first write fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    return write


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr


@pytest.mark.slow
def test_a_closed_stdout_still_runs_and_exits_0(workdir, env):
    (workdir / "s.toml").write_text(_suite("s", ["mlp-vae"]), encoding="utf-8")
    result = bench(env, "run", "--suite", "s.toml", "--quiet", stdout=None)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert (workdir / "results/leaderboards/s.md").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stdout", ["closed", "cut-off"])
def test_the_exit_code_still_says_a_run_failed(workdir, env, stdout):
    """One of two runs fails (its model raises): exit code 1 whatever became of stdout."""
    (workdir / "s.toml").write_text(_suite("s", ["tiny-vae", "mlp-vae"]), encoding="utf-8")
    env = {**env, "BENCH_FAULT": "model-raises"}
    fd = cut_off() if stdout == "cut-off" else None
    try:
        result = bench(env, "run", "--suite", "s.toml", "--quiet", stdout=fd)
    finally:
        if fd is not None:
            os.close(fd)
    _no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert (workdir / "results/leaderboards/s.md").exists()


@pytest.mark.slow
def test_a_reader_that_goes_away_is_no_error(workdir, env):
    """`bench ls models | head -1` and `bench leaderboard ... | head -1`."""
    (workdir / "s.toml").write_text(_suite("s", ["mlp-vae"]), encoding="utf-8")
    assert (
        bench(env, "run", "--suite", "s.toml", "--quiet", stdout=subprocess.DEVNULL).returncode == 0
    )
    for args in (["ls", "models"], ["leaderboard", "--suite", "s"], ["show", "suite", "collapse"]):
        fd = cut_off()
        try:
            result = bench(env, *args, stdout=fd)
        finally:
            os.close(fd)
        _no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)


@pytest.mark.slow
def test_a_suite_file_is_utf_8_under_an_ascii_locale(workdir, env):
    """Non-ASCII text in a suite file, and tables with arrows printed to an ASCII stdout."""
    text = "# Überprüfung — ✓\n" + _suite("u", ["mlp-vae"]).replace(
        'name = "u"\n', 'name = "u"\ndescription = "naïve ✓"\n'
    )
    (workdir / "u.toml").write_text(text, encoding="utf-8")
    ascii_env = {**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = bench(ascii_env, "run", "--suite", "u.toml", "--quiet", stdout=subprocess.PIPE)
    _no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert "1 runs (0 not finished) of u/custom" in result.stdout


def _unencoded_text_calls(path: Path) -> list[str]:
    """Calls that open, read or write text without ``encoding=`` (binary modes excepted)."""
    names = {"open", "read_text", "write_text", "fdopen", "TextIOWrapper"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in names or any(k.arg == "encoding" for k in node.keywords):
            continue
        if isinstance(func, ast.Attribute) and getattr(func.value, "id", None) == "os":
            continue  # os.open: a descriptor, no text
        modes = [a.value for a in node.args if isinstance(a, ast.Constant)]
        modes += [k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)]
        if not any(isinstance(m, str) and "b" in m and len(m) <= 3 for m in modes):
            found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_every_text_file_is_opened_as_utf_8():
    """Never the locale's encoding: a suite file or record reads the same everywhere."""
    found = [
        call
        for root in ("bench", "plugins")
        for path in sorted((REPO / root).rglob("*.py"))
        for call in _unencoded_text_calls(path)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--results-dir", "a" * 300], "--results-dir: 'aaaaaaaa"),
        (["--results-dir", f"x/{'a' * 300}/y"], "--results-dir: 'x/aaaaaa"),
        (["--data-dir", "a" * 300], "--data-dir: 'aaaaaaa"),
        (["--leaderboard-dir", "a" * 300], "--leaderboard-dir: 'aaaaaaaa"),
    ],
)
def test_a_path_no_file_system_takes_is_one_line(capsys, fresh_plugins, workdir, args, needle):
    (workdir / "s.toml").write_text(_suite("s", ["mlp-vae"]), encoding="utf-8")
    code, _, err = run_cli(capsys, "run", "--suite", "s.toml", "--quiet", *args)
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and line.startswith("error: ") and needle in line, err
    assert "at most 255 bytes" in line and len(line) < 200
    assert not (workdir / "results").exists()


@pytest.mark.parametrize(
    "command",
    [["show", "run"], ["leaderboard", "--suite"], ["leaderboard", "--suite", "s", "--results-dir"]],
)
def test_a_300_character_argument_is_one_line(capsys, fresh_plugins, workdir, command):
    """Wherever the path is opened: the OSError (ENAMETOOLONG) becomes one line."""
    code, _, err = run_cli(capsys, *command, "a" * 300)
    assert code == 2 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and len(err) < 250, err


def test_a_nul_in_a_path_is_one_line():
    from bench.errors import ConfigError
    from bench.names import check_path, path_error

    with pytest.raises(ConfigError, match=r"--data-dir: 'a\\x00b' holds a NUL byte"):
        check_path("a\0b", "--data-dir")
    try:
        os.stat("a\0b")
    except ValueError as exc:
        assert path_error(exc) == "a path holds a NUL byte (\\x00); no file name can"
