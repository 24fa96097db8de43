"""The runner's seam: plugin state in one host object that a block can replace, no import
circles, and a command line that answers ``--help``, ``ls`` and ``show`` without torch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import DatasetSpec, ModelSpec, hookimpl, plugins
from bench.plugins import PluginHost, current_host, using_host, with_plugins

ROOT = Path(__file__).resolve().parents[1]


class ExtraModel:
    @hookimpl
    def register_models(self, register):
        register(ModelSpec("extra-model", build=lambda info: None, description="extra"))


class EpochListener:
    def __init__(self) -> None:
        self.epochs: list[int] = []

    @hookimpl
    def on_epoch_end(self, cell, epoch, metrics):
        self.epochs.append(epoch)


# ---- the plugin host -----------------------------------------------------------------------


def test_a_host_with_an_extra_plugin_is_seen_inside_the_block_only(fresh_plugins):
    before = plugins.registries()
    process_host = current_host()
    with with_plugins({"extra": ExtraModel()}, "extra-dist 1.0") as host:
        assert current_host() is host is not process_host
        model = plugins.registries().models.get("extra-model")
        assert (model.plugin, model.distribution) == ("extra", "extra-dist 1.0")
        assert "mlp-vae" in plugins.registries().models  # the parent's plugins are there too
        assert "extra" in {row["name"] for row in plugins.plugin_info()}
    assert current_host() is process_host
    assert plugins.registries() is before  # not rebuilt: the process-wide host never changed
    assert "extra-model" not in plugins.registries().models
    assert plugins.get_plugin_manager().get_plugin("extra") is None


def test_a_listener_shares_the_registries_and_hears_hooks_inside_the_block_only(fresh_plugins):
    """A tuning trial's reporter: no registration hook, so no registries rebuilt."""
    before = plugins.registries()
    listener = EpochListener()
    with with_plugins({"trial-reporter": listener}):
        assert plugins.registries() is before
        plugins.call_each("on_epoch_end", cell=None, epoch=3, metrics={})
    plugins.call_each("on_epoch_end", cell=None, epoch=4, metrics={})
    assert listener.epochs == [3]
    assert plugins.registries() is before


def test_changes_to_an_override_host_stay_in_it(fresh_plugins):
    before = plugins.registries()
    with using_host(PluginHost()) as host:
        plugins.register_plugin(ExtraModel(), "extra")
        assert "extra-model" in host.registries().models
        plugins.reset()  # resets the override host, not the process-wide one
        assert "extra-model" not in plugins.registries().models
    assert plugins.registries() is before


def test_hosts_nest_and_restore(fresh_plugins):
    outer, inner = PluginHost(), PluginHost()
    with using_host(outer):
        with using_host(inner):
            assert current_host() is inner
        assert current_host() is outer


def test_other_threads_keep_the_process_wide_host(fresh_plugins):
    process_host = current_host()
    seen: list[PluginHost] = []
    with with_plugins({"extra": ExtraModel()}):
        thread = threading.Thread(target=lambda: seen.append(current_host()))
        thread.start()
        thread.join()
    assert seen == [process_host]


def test_an_extended_host_leaves_its_parent_alone(fresh_plugins):
    parent = PluginHost()
    child = parent.extended({"extra": ExtraModel()})
    child.register_plugin(_data_plugin(), "more-data")
    assert "extra-model" in child.registries().models
    assert "more-data" in child.registries().datasets
    assert "extra-model" not in parent.registries().models
    assert "more-data" not in parent.registries().datasets
    assert parent.get_plugin_manager().get_plugin("extra") is None


def _data_plugin() -> object:
    class MoreData:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec("more-data", load=lambda data_dir: None))

    return MoreData()


# ---- import circles ------------------------------------------------------------------------


def _architecture():
    spec = importlib.util.spec_from_file_location(
        "architecture", ROOT / "scripts" / "architecture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circles_at_load_time_nor_through_imports_inside_functions():
    arch = _architecture()
    graph = arch.import_graph(nested=True)
    assert "bench.plugins" in graph["bench.suites"]  # the graph is real: it sees imports
    assert arch.circles(arch.import_graph(nested=False)) == []
    assert arch.circles(graph) == []


# ---- the command line without torch --------------------------------------------------------

# Runs the CLI with the given arguments, then says on stderr whether torch was imported.
CLI_THEN_REPORT = """
import sys
from bench.cli import main
try:
    main(sys.argv[1:])
finally:
    print("TORCH_IMPORTED" if "torch" in sys.modules else "TORCH_NOT_IMPORTED", file=sys.stderr)
"""


def run_cli_process(*args: str, before: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", before + CLI_THEN_REPORT, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # starts bench processes
@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("ls", "models"),
        ("ls", "suites"),
        ("show", "model", "mlp-vae"),
        ("show", "suite", "collapse"),
        ("run", "--help"),
        ("tune", "--help"),
    ],
)
def test_commands_that_train_nothing_do_not_import_torch(args):
    result = run_cli_process(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "TORCH_NOT_IMPORTED", result.stderr


@pytest.mark.slow
def test_the_torch_check_sees_torch():
    result = run_cli_process("--help", before="import bench.contract\n")
    assert result.stderr.strip().splitlines()[-1] == "TORCH_IMPORTED"


@pytest.mark.slow
def test_help_lists_every_command_plugin_commands_included():
    result = run_cli_process("--help")
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0]
        for line in result.stdout.split("Commands:")[1].splitlines()
        if line.startswith("  ") and line.strip()
    }
    core = {"run", "leaderboard", "ls", "show", "plugins"}
    from_plugins = {"tune", "throughput", "new-plugin"}
    assert core | from_plugins <= listed


@pytest.mark.slow
def test_show_still_describes_the_model_without_torch():
    result = run_cli_process("show", "model", "mlp-vae")
    assert "latent_dim" in result.stdout and "plugin vae" in result.stdout


def test_the_lazy_top_level_names_are_all_there():
    import bench

    assert set(bench.__all__) <= set(dir(bench))
    for name in bench.__all__:
        value = getattr(bench, name)
        assert vars(bench)[name] is value  # imported once, then a plain attribute
    from bench import ModelSpec
    from bench.specs import ModelSpec as defined

    assert ModelSpec is defined
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        bench.NoSuchName  # noqa: B018
