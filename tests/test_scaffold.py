"""`bench new-plugin`: names and folders are checked, the package is lint-clean, and the
tutorial (docs/tutorial.md) runs as written: generate, install, test, run the suite."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from bench.cli import main
from bench.scaffold import generate

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


@pytest.mark.parametrize("name", ["My Models", "9lives", "a--b", "UPPER"])
def test_bad_names_are_one_line_errors(capsys, fresh_plugins, tmp_path, name):
    with pytest.raises(SystemExit) as exc:
        main(["new-plugin", name, "--dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "plugin name" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_left_alone(capsys, fresh_plugins, tmp_path):
    (tmp_path / "bench-mine").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["new-plugin", "mine", "--dir", str(tmp_path)])
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert list((tmp_path / "bench-mine").iterdir()) == []


def test_generated_package_has_every_part_and_is_lint_clean(tmp_path):
    target, written = generate("gated-skip", tmp_path)
    assert target == tmp_path / "bench-gated-skip"
    assert sorted(written) == sorted(
        [
            "README.md",
            "pyproject.toml",
            "gated-skip.toml",
            "tests/test_plugin.py",
            *(f"bench_gated_skip/{f}.py" for f in ("__init__", "plugin", "model", "objective")),
            *(f"bench_gated_skip/{f}.py" for f in ("metric", "data")),
        ]
    )
    text = "".join((target / rel).read_text() for rel in written)
    assert "{{" not in text and "gated_skip_bpd" in text and '"gated-skip-vae"' in text
    ep = (target / "pyproject.toml").read_text()
    assert '[project.entry-points.bench]\ngated-skip = "bench_gated_skip.plugin"' in ep
    pytest.importorskip("ruff")
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=target, capture_output=True, text=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def _can_build_offline() -> bool:
    """pip's --no-build-isolation builds with this environment's setuptools: it needs one that
    writes wheels by itself (70.1+) or the `wheel` package."""
    try:
        version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    except metadata.PackageNotFoundError:
        return False
    try:
        metadata.version("wheel")
        return True
    except metadata.PackageNotFoundError:
        return version >= (70, 1)


def _environment(tmp_path: Path, site: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("BENCH_RESULTS_DIR", "BENCH_LEADERBOARD_DIR", "BENCH_DISABLE_PLUGINS"):
        env.pop(var, None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["BENCH_CACHE_DIR"] = str(tmp_path / "cache")
    # Plots cost a third of the suite's CPU time here and have tests of their own.
    env["BENCH_DISABLE_PLUGINS"] = "plots"
    return env


def _command(line: str, site: Path, env: dict[str, str]) -> list[str]:
    """One tutorial line as argv. `pip install -e PKG` installs PKG into `site`, a folder only
    these commands see: installing it into the environment running the tests would leak the
    plugin into every later test. --no-deps and --no-build-isolation keep it offline."""
    argv = shlex.split(line)
    if argv[:5] == ["python", "-m", "pip", "install", "-e"]:
        return [
            sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
            "--target", str(site), *argv[5:],
        ]  # fmt: skip
    if argv[0] == "python":
        return [sys.executable, *argv[1:]]
    if argv[0] == "bench" and shutil.which("bench", path=env["PATH"]) is None:
        return [sys.executable, "-m", "bench.cli", *argv[1:]]
    return argv


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path):
    """Every ```bash line runs and succeeds; every file excerpt (a block whose first line is
    `# bench-mymodels/<path>`) stands verbatim in the generated file; every other ```python
    block runs. At the end the suite's leaderboard has its rows."""
    if not _can_build_offline():
        pytest.skip("setuptools >= 70.1 (or wheel) is needed to build the package offline")
    site = tmp_path / "site"
    env = _environment(tmp_path, site)
    blocks = FENCE.findall(TUTORIAL.read_text())
    assert sum(lang == "bash" for lang, _ in blocks) >= 4
    for lang, body in blocks:
        first, _, rest = body.partition("\n")
        if first.startswith("# bench-mymodels/"):
            path = tmp_path / first.removeprefix("# ")
            assert rest in path.read_text(), f"{path.name}: the tutorial's excerpt is not in it"
        elif lang == "bash":
            for line in body.splitlines():
                done = subprocess.run(
                    _command(line, site, env),
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                if line == "bench plugins":
                    assert "mymodels" in done.stdout and "bench-mymodels 0.1.0" in done.stdout
        elif lang == "python":
            done = subprocess.run(
                [sys.executable, "-c", body], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr[-3000:]
    board = (tmp_path / "results" / "leaderboards" / "mymodels.md").read_text()
    assert "mymodels-squares" in board  # rows sit under their data set's section
    for model in ("mymodels-vae", "mlp-vae"):
        for objective in ("elbo", "mymodels-beta"):
            assert f"| {model} | {objective} | 1 † |" in board  # one seed: †
    records = sorted((tmp_path / "results" / "mymodels" / "custom").glob("*/record.json"))
    assert len(records) == 4 and all('"mymodels_bpd"' in r.read_text() for r in records)
