"""Plugin manager and registries: entry points, disabling, broken plugins, unique names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import DatasetSpec, ModelSpec, hookimpl, hookspecs, plugins
from bench.errors import PluginError, UnknownNameError
from bench.registry import Registry
from tests.helpers.plugins import fake_distribution
from tests.helpers.suites import group_toml, suite_toml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "bench-example-plugin"


def run_bench(args: list[str], site: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env["PYTHONPATH"] = os.pathsep.join([str(site), full_env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_hook_is_documented():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    specs = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "bench_spec")]
    assert len(specs) >= 10
    missing = [name for name in specs if f"### {name}" not in doc]
    assert not missing, f"hooks without an entry in docs/plugins.md: {missing}"


def test_every_hookspec_is_typed():
    import inspect

    for name in dir(hookspecs):
        fn = getattr(hookspecs, name)
        if hasattr(fn, "bench_spec"):
            sig = inspect.signature(fn)
            assert fn.__doc__, name
            assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())


def test_first_party_plugins_load_through_entry_points(fresh_plugins):
    info = {row["name"]: row for row in plugins.plugin_info()}
    for name in ("datasets", "vae", "objectives", "metrics", "suites"):
        assert info[name]["distribution"].startswith("collapse-bench")
    regs = plugins.registries()
    model = regs.models.get("mlp-skip-vae")
    assert (model.plugin, model.distribution.split()[0]) == ("vae", "collapse-bench")


def test_disable_plugins_by_name(fresh_plugins, monkeypatch):
    monkeypatch.setenv("BENCH_DISABLE_PLUGINS", "vae")
    regs = plugins.registries()
    assert "mlp-vae" not in regs.models
    assert "digits" in regs.datasets


def test_unknown_name_suggests():
    reg: Registry[ModelSpec] = Registry("model")
    reg.add(ModelSpec("mlp-skip-vae", build=lambda info: None), "p", "d")
    with pytest.raises(UnknownNameError, match="did you mean 'mlp-skip-vae'"):
        reg.get("mlp-skip-vea")


def test_duplicate_name_names_both_plugins(fresh_plugins):
    class Dup:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec("digits", load=lambda d: None))

    plugins.register_plugin(Dup(), "dup-plugin", "dup-dist 1.0")
    with pytest.raises(PluginError) as err:
        plugins.registries()
    message = str(err.value)
    assert "'datasets'" in message and "'dup-plugin'" in message and "dup-dist 1.0" in message


def test_hook_that_raises_names_plugin(fresh_plugins):
    class Broken:
        @hookimpl
        def register_models(self, register):
            raise RuntimeError("boom")

    plugins.register_plugin(Broken(), "broken", "broken-dist 2.0")
    with pytest.raises(
        PluginError,
        match=r"plugin 'broken' \(broken-dist 2.0\) raised in "
        r"register_models: RuntimeError: boom",
    ):
        plugins.registries()


@pytest.mark.slow
def test_broken_third_party_plugin_is_one_line_exit_2(tmp_path):
    site = tmp_path / "site"
    (site / "broken_pkg").mkdir(parents=True)
    (site / "broken_pkg" / "__init__.py").write_text("import does_not_exist\n")
    fake_distribution(site, "broken-dist", {"broken": "broken_pkg"})
    result = run_bench(["ls", "models"], site, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "plugin 'broken' (broken-dist 0.1.0) failed to load" in lines[0]
    assert "ModuleNotFoundError" in lines[0]
    # ...and disabling it by name gets the harness working again.
    ok = run_bench(["ls", "models"], site, tmp_path, BENCH_DISABLE_PLUGINS="broken")
    assert ok.returncode == 0 and "mlp-skip-vae" in ok.stdout


@pytest.mark.slow
def test_third_party_example_runs_through_bench_run(tmp_path):
    """The example package adds a model and a metric through the entry-point group, is listed
    with its distribution, trains and evaluates through `bench run`, and its metric becomes a
    leaderboard column with no change to the core."""
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "bench-example-plugin", {"example": "bench_example_plugin"})
    (site / "example.pth").write_text(str(EXAMPLE) + "\n")  # like an editable install
    os.symlink(EXAMPLE / "bench_example_plugin", site / "bench_example_plugin")
    listed = run_bench(["ls", "models"], site, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "linear-decoder-vae" in listed.stdout and "bench-example-plugin" in listed.stdout
    suite = tmp_path / "example.toml"
    models = ["linear-decoder-vae", "mlp-vae"]
    example = group_toml("smoke", models=models, budget={"epochs": 2}, eval={"iw_samples": 20})
    suite.write_text(suite_toml("example", example))
    result = run_bench(["run", "--suite", str(suite), "--quiet"], site, tmp_path)
    assert result.returncode == 0, result.stderr
    board = (tmp_path / "results" / "leaderboards" / "example.md").read_text()
    assert "linear-decoder-vae" in board and "mlp-vae" in board
    header = next(line for line in board.splitlines() if line.startswith("| Model"))
    assert "Posterior std ↓" in header.split(" | ")
    assert "**Posterior std** ↓ mean posterior standard deviation" in board
    csv = (tmp_path / "results" / "leaderboards" / "example.csv").read_text().splitlines()
    assert "posterior_std_mean" in csv[0].split(",")
    for row in csv[1:]:
        value = float(row.split(",")[csv[0].split(",").index("posterior_std_mean")])
        assert 0.0 < value <= 1.5
    # An uninstalled plugin's metric: the board rebuilt without it keeps the recorded values.
    rebuilt = run_bench(
        ["leaderboard", "--suite", "example", "--out", "again"],
        site,
        tmp_path,
        BENCH_DISABLE_PLUGINS="example",
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "posterior_std ↓" in (tmp_path / "again" / "example.md").read_text()
