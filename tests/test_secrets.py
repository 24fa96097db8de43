"""No password leaves the process (docs/faults.md, "Security"): one redaction
(:func:`bench.secrets.redact`) for every message, warning, record, log, holder file and saved
command line. The lock's "in use by" message is tried with a real second `bench` process, and
a real `bench tune` stopped by SIGTERM where a PostgreSQL server is at hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bench.secrets import has_secret, redact, redact_argv
from tests.helpers.cli import run_cli
from tests.helpers.processes import TIMEOUT_S, wait_for
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]
POSTGRES_ENV = "BENCH_TEST_POSTGRES_URL"
URL = "postgresql+psycopg://alice:hunter22@db.example:5432/optuna?sslpassword=k3y-pass"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://alice:hunter22@db/x", "postgresql://alice:***@db/x"),
        ("postgresql+psycopg://a:p%40ss@h:5/x", "postgresql+psycopg://a:***@h:5/x"),
        ("postgresql://db/x?user=a&password=hunter22&sslmode=require", None),
        ("postgresql://db/x?sslpassword=k3y&password=hunter22", None),
        ("host=db password=hunter22 dbname=x", "host=db password=*** dbname=x"),
        ("host=db password='hunter 22' dbname=x", "host=db password=*** dbname=x"),
        ("host=db PASSWORD = hunter22", "host=db PASSWORD = ***"),
        ("{'password': 'hunter22', 'host': 'db'}", "{'password': ***, 'host': 'db'}"),
        ('{"sslpassword": "hunter22"}', '{"sslpassword": ***}'),
        ("--storage=postgresql://u:hunter22@h/db", "--storage=postgresql://u:***@h/db"),
    ],
)
def test_every_form_of_a_password_is_hidden(text, expected):
    shown = redact(text)
    assert "hunter" not in shown and "k3y" not in shown and "p%40ss" not in shown, shown
    assert "***" in shown
    if expected is not None:
        assert shown == expected
    assert has_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://db:5432/optuna",
        "postgresql+psycopg://alice@db/x",
        'FATAL: password authentication failed for user "alice"',
        "results/s/custom/g__digits__mlp-vae__elbo__s0 epoch 1 at 12:00:00",
        "https://example.org/a/b?x=1&y=2",
        "sslkey=/home/a/.postgresql/key passfile=/home/a/.pgpass",
    ],
)
def test_text_without_a_password_is_left_alone(text):
    assert redact(text) == text and not has_secret(text)


def test_a_password_is_hidden_wherever_a_driver_repeats_it():
    """An error message repeats the (decoded) password in its own words; the URL it came from
    says which password to look for."""
    url = "postgresql://alice:s3cr%40t@db/x"
    assert redact("auth failed for alice with s3cr@t", url) == "auth failed for alice with ***"
    assert redact("password=hunter22; tried hunter22 twice") == "password=***; tried *** twice"


def test_a_command_line_is_redacted_argument_by_argument():
    argv = ["tune", "--storage", "postgresql://u:a b@h/db", "--n-trials", "3"]
    assert redact_argv(argv) == ["tune", "--storage", "postgresql://u:***@h/db", "--n-trials", "3"]


def test_the_interrupted_and_stopped_lines_hide_the_password():
    from bench.cli import interrupted_message

    line = interrupted_message(["tune", "--suite", "t.toml", "--storage", URL])
    assert "hunter22" not in line and "k3y-pass" not in line
    assert line.startswith("interrupted: the same command (bench tune --suite t.toml --storage ")
    assert "alice:***@db.example" in line and "sslpassword=***" in line
    assert line.endswith("PGPASSWORD or ~/.pgpass keep it off the command line")
    plain = interrupted_message(["run", "--suite", "t.toml"])
    assert plain == "interrupted: bench run --suite t.toml --resume continues"


def test_errors_and_warnings_hide_the_password(capsys, fresh_plugins, workdir):
    """`?password=` in a URL: the error of a storage that cannot be reached, and a warning."""
    from bench.errors import print_warning

    (workdir / "t.toml").write_text(suite_toml("t"), encoding="utf-8")
    url = "postgresql+psycopg://127.0.0.1:1/x?user=bench&password=hunter22"
    code, out, err = run_cli(
        capsys, "tune", "--suite", "t.toml", "--n-trials", "1", "--storage", url
    )
    assert code == 2 and "cannot reach storage" in err, err
    assert "hunter22" not in out + err and "password=***" in err
    print_warning(f"could not reach {url}")
    assert capsys.readouterr().err == (
        "warning: could not reach postgresql+psycopg://127.0.0.1:1/x?user=bench&password=***\n"
    )


def test_a_failed_runs_record_and_error_log_hide_the_password(tmp_path):
    from bench.runner import failures

    try:
        raise ConnectionError(f"cannot open {URL}")
    except ConnectionError as exc:
        error = failures.describe(exc)
        log = failures.write_traceback(tmp_path, exc, "run x").read_text(encoding="utf-8")
    assert error.message == (
        "cannot open postgresql+psycopg://alice:***@db.example:5432/optuna?sslpassword=***"
    )
    assert "Traceback" in log and "hunter22" not in log and "k3y-pass" not in log


def test_an_unexpected_traceback_hides_the_password(capsys):
    from bench.cli import _redacted_excepthook

    try:
        raise RuntimeError(f"bug near {URL}")
    except RuntimeError as exc:
        _redacted_excepthook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "RuntimeError: bug near" in err and "hunter22" not in err


def test_ray_tasks_never_get_a_setting_with_a_password(monkeypatch):
    from bench.runner.ray import forwarded_env

    monkeypatch.setenv("BENCH_X_URL", "postgresql://db/x?password=hunter22")
    monkeypatch.setenv("BENCH_X_DSN", "host=db password=hunter22")
    monkeypatch.setenv("BENCH_X_DIR", "/data")
    env = forwarded_env()
    assert "BENCH_X_URL" not in env and "BENCH_X_DSN" not in env
    assert env["BENCH_X_DIR"] == "/data"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")]
    )
    return env


@pytest.mark.slow
def test_the_holder_file_and_the_in_use_message_hide_the_password(workdir, monkeypatch):
    """This process holds the lock as `bench tune --storage URL` would; a real second `bench`
    is refused. Then a holder file an older version wrote, password and all: still hidden."""
    from bench.locks import lock_paths, results_lock

    (workdir / "t.toml").write_text(suite_toml("t"), encoding="utf-8")
    folder = workdir / "results/t/custom"
    monkeypatch.setattr(sys, "argv", ["bench", "tune", "--suite", "t.toml", "--storage", URL])
    second = [sys.executable, "-m", "bench.cli", "run", "--suite", "t.toml", "--quiet"]
    with results_lock(folder):
        holder = lock_paths(folder)[1]
        written = json.loads(holder.read_text(encoding="utf-8"))
        assert "hunter22" not in written["command"] and "alice:***@db.example" in written["command"]
        refused = subprocess.run(
            second, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert refused.returncode == 2, refused.stderr
        assert f"in use by pid {os.getpid()}" in refused.stderr
        assert "sslpassword=***" in refused.stderr and "hunter22" not in refused.stderr
        holder.write_text(json.dumps({**written, "command": f"bench tune --storage {URL}"}))
        refused = subprocess.run(
            second, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
        )
        assert refused.returncode == 2 and "in use by" in refused.stderr, refused.stderr
        assert "hunter22" not in refused.stderr and "k3y-pass" not in refused.stderr


@pytest.mark.slow
@pytest.mark.skipif(POSTGRES_ENV not in os.environ, reason=f"{POSTGRES_ENV} is not set")
def test_sigterm_during_a_postgres_tune_prints_no_password(workdir):
    """The real case: `bench tune --storage postgresql://user:password@...` stopped by a
    scheduler. Its "the same command continues" line hides the password."""
    from sqlalchemy.engine import make_url

    url = os.environ[POSTGRES_ENV]
    password = make_url(url).password
    suite = f"sec{uuid.uuid4().hex[:8]}"
    (workdir / "t.toml").write_text(
        suite_toml(suite, budget={"epochs": 40, "batch_size": 100, **FEW_DIGITS}),
        encoding="utf-8",
    )
    args = ["tune", "--suite", "t.toml", "--n-trials", "2", "--device", "cpu", "--storage", url]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: list(workdir.glob("results/**/epochs.jsonl")), "a trial training", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert password and password not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: the same command (bench tune --suite t.toml")
    assert last.endswith("PGPASSWORD or ~/.pgpass keep it off the command line")
