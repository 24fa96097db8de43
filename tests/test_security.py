"""Results folders, checkpoints and suite files are untrusted (docs/faults.md, "Security"):
a crafted checkpoint runs no code, names and paths stay inside their folders, no run
overwrites another, every value is checked however it is given, and no secret is written.

Each test is one finding of the attacks tried on `bench`; the ones that need a signal, a full
disk or a second process are in tests/test_signals.py.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.cli import one_line, run_cli
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]
RUN = "g__digits__mlp-vae__elbo__s0"


def tiny_suite(name: str = "t", **keys) -> str:
    """One cell: a small MLP, one epoch on a few hundred digits."""
    budget = {"epochs": 1, "batch_size": 100, **FEW_DIGITS, **keys.pop("budget", {})}
    return suite_toml(
        name,
        **{
            "seeds": [0],
            "metrics": ["neg_elbo"],
            "model_params": {"mlp-vae": {"hidden": 8, "latent_dim": 2}},
            **keys,
        },
        budget=budget,
        eval={"iw_samples": 2, "batch_size": 100},
    )


# ---- 1. checkpoints ------------------------------------------------------------------------


class _Attack:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _attacker_checkpoint(path: Path, marker: Path) -> None:
    torch.save(
        {"model": {}, "optimizer": {}, "state": {"epoch": 0}, "rng": {}, "x": _Attack(marker)},
        path,
    )


def test_the_attack_file_does_run_code_when_loaded_unsafely(tmp_path):
    """The payload is live: an unsafe load (what `bench` did) creates the marker."""
    marker = tmp_path / "pwned"
    _attacker_checkpoint(tmp_path / "evil.pt", marker)
    code = f"import torch; torch.load({str(tmp_path / 'evil.pt')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.exists()


@pytest.mark.slow
def test_a_crafted_checkpoint_runs_no_code_and_is_set_aside(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    code, _, err = run_cli(capsys, "run", "--suite", "t.toml", "--quiet")
    assert code == 0, err
    run_dir = workdir / "results/t/custom" / RUN
    (run_dir / "record.json").unlink()  # as if killed: --resume loads the checkpoint
    marker = workdir / "pwned"
    _attacker_checkpoint(run_dir / "checkpoint.pt", marker)

    code, out, err = run_cli(capsys, "run", "--suite", "t.toml", "--quiet", "--resume")
    assert code == 0, err
    assert not marker.exists()
    assert (run_dir / "checkpoint.pt.corrupt").exists()
    assert "checkpoint.pt does not load (UnpicklingError: it holds objects other than" in err
    assert "from scratch" in err


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    from bench.runner import cell as build

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = build.rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.save({"rng": state}, tmp_path / "r.pt")
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)["rng"]
    build.set_rng_state(loaded)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_nothing_in_the_tree_unpickles_without_weights_only():
    """Every torch.load names weights_only=True; nothing but the tests calls pickle.load."""
    for path in [*REPO.glob("bench/**/*.py"), *REPO.glob("plugins/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in text, path
        assert not re.search(r"\bpickle\.loads?\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


# ---- 2. names and paths ----------------------------------------------------------------------


def _bench_user_error(capsys, *args: str) -> str:
    """``bench args`` exits 2 with one line; returns it."""
    code, _, err = run_cli(capsys, *args)
    assert code == 2, err
    return one_line(err)


def _nothing_created(workdir: Path) -> None:
    """No folder but the suite file's own and the caches: nothing was written anywhere."""
    made = {p.name for p in workdir.parent.iterdir()} - {workdir.name}
    assert not made & {"x", "G", "escaped"}, made
    assert not (workdir / "results").exists() and not (workdir / "leaderboards").exists()


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"name": "../../x"}, "name: '../../x' is not a valid name"),
        ({"name": "/tmp/escaped"}, "'/tmp/escaped' is not a valid name"),
        ({"group": "../../../G"}, "group[0]: name: '../../../G' is not a valid name"),
        ({"name": "a" * 300}, "name: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not a valid"),
        ({"group": "g\0x"}, "name: 'g\\x00x' is not a valid name"),
        ({"group": "."}, "name: '.' is not a valid name"),
    ],
)
def test_names_that_would_leave_their_folder_exit_2(capsys, fresh_plugins, workdir, keys, needle):
    name, group = keys.get("name", "t"), keys.get("group", "g")
    text = tiny_suite(name).replace('name = "g"', f"name = {json.dumps(group)}")
    (workdir / "t.toml").write_text(text, encoding="utf-8")
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet")
    assert needle in line and "letters, digits" in line
    _nothing_created(workdir)


def test_a_suite_or_scale_argument_is_a_name_not_a_path(capsys, fresh_plugins, workdir):
    line = _bench_user_error(capsys, "leaderboard", "--suite", "../../etc")
    assert "--suite: '../../etc' is not a valid name" in line
    line = _bench_user_error(capsys, "leaderboard", "--suite", "collapse", "--scale", "../..")
    assert "--scale: '../..' is not a valid name" in line


def test_a_symlinked_run_folder_is_refused_not_followed(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    target = workdir / "victim"
    target.mkdir()
    (target / "record.json").write_text("precious")
    folder = workdir / "results/t/custom"
    folder.mkdir(parents=True)
    (folder / RUN).symlink_to(target)
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet", "--overwrite")
    assert f"run folder results/t/custom/{RUN} is a symbolic link" in line
    assert (target / "record.json").read_text() == "precious"
    assert [p.name for p in target.iterdir()] == ["record.json"]


def test_a_link_inside_a_run_folder_or_above_it_is_refused(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (workdir / "results").mkdir()
    (workdir / "results/t").symlink_to(elsewhere)
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet")
    assert "results folder results/t is a symbolic link" in line
    (workdir / "results/t").unlink()
    run_dir = workdir / "results/t/custom" / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "epochs.jsonl").symlink_to(elsewhere / "log")
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet", "--overwrite")
    assert "holds a symbolic link, epochs.jsonl" in line
    assert not list(elsewhere.iterdir())


def test_a_symlinked_lock_file_is_never_opened(workdir):
    from bench.errors import BenchError
    from bench.locks import results_lock

    victim = workdir / "victim.txt"
    victim.write_text("precious")
    (workdir / "results/t").mkdir(parents=True)
    (workdir / "results/t/.custom.lock").symlink_to(victim)
    with (
        pytest.raises(BenchError, match="is a symbolic link"),
        results_lock(workdir / "results/t/custom"),
    ):
        pass
    assert victim.read_text() == "precious"


# ---- 3. one identity per run -----------------------------------------------------------------


def test_two_groups_of_one_name_exit_2_naming_both(capsys, fresh_plugins, workdir):
    from tests.helpers.suites import group_toml

    groups = [
        group_toml("g", model_params={"mlp-vae": {"latent_dim": d}}, budget={"epochs": 1})
        for d in (2, 4)
    ]
    (workdir / "t.toml").write_text(suite_toml("t", *groups))
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet")
    assert "group[0] and group[1] are both named 'g'" in line
    _nothing_created(workdir)


@pytest.mark.parametrize("key", ["models", "seeds"])
def test_an_item_listed_twice_exits_2(capsys, fresh_plugins, workdir, key):
    value = ["mlp-vae", "mlp-vae"] if key == "models" else [0, 0]
    (workdir / "t.toml").write_text(tiny_suite(**{key: value}))
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet")
    assert f"group[0]: {key}: {value[0]!r} is listed twice" in line


def test_a_registered_suite_whose_plugins_add_two_groups_of_one_name_exits_2(fresh_plugins):
    from bench import Group
    from bench.errors import ConfigError
    from bench.runner import select_cells
    from tests.helpers.suites import one_group_suite

    group = Group("g", ("digits",), ("mlp-vae",), ("elbo",))
    suite = one_group_suite("s", group)
    suite.groups["s"].append(group)
    with pytest.raises(ConfigError, match=r"group\[0\] and group\[1\] are both named 'g'"):
        select_cells(suite, None)


@pytest.mark.slow
def test_another_suite_of_the_same_name_cannot_mix_into_its_results(capsys, fresh_plugins, workdir):
    (workdir / "a.toml").write_text(tiny_suite("t"))
    code, _, err = run_cli(capsys, "run", "--suite", "a.toml", "--quiet")
    assert code == 0, err
    (workdir / "b.toml").write_text(tiny_suite("t", budget={"lr": 0.01}))
    line = _bench_user_error(capsys, "run", "--suite", "b.toml", "--quiet", "--resume")
    assert "holds the results of another suite of that name" in line and "a.toml" in line
    # The same settings from another file (a copy, a colleague's checkout) may add to them.
    (workdir / "copy").mkdir()
    (workdir / "copy/a.toml").write_text(tiny_suite("t"))
    record = workdir / "results/t/custom" / RUN / "record.json"
    before = record.read_text()
    code, out, err = run_cli(capsys, "run", "--suite", "copy/a.toml", "--quiet", "--resume")
    assert code == 0, err
    assert record.read_text() == before  # kept, not trained again


# ---- 4. --set meets the suite file's checks; upper bounds; memory ----------------------------

SET_CASES = [
    ("budget.epochs=-1", "budget.epochs: must be >= 1 (an integer), got -1"),
    ("budget.batch_size=0", "budget.batch_size: must be >= 1 (an integer), got 0"),
    ("budget.lr=-1", "budget.lr: must be > 0 (a number), got -1"),
    ("budget.lr=nan", "budget.lr: must be > 0 (a number), got nan"),
    ("eval.iw_samples=0", "eval.iw_samples: must be >= 1 (an integer), got 0"),
    ("budget.epochs=1000000000", "budget.epochs: must be at most 100000"),
    ("eval.iw_samples=1000000000", "eval.iw_samples: must be at most 1000000"),
]


@pytest.mark.parametrize(("override", "needle"), SET_CASES)
def test_set_values_meet_the_suite_files_checks_before_anything_is_created(
    capsys, fresh_plugins, workdir, override, needle
):
    (workdir / "t.toml").write_text(tiny_suite())
    line = _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet", "--set", override)
    assert line.startswith(f"error: --set {override}: {needle}")
    _nothing_created(workdir)


@pytest.mark.parametrize(
    ("table", "value", "needle"),
    [
        ("budget", {"epochs": 10**9}, "budget.epochs: must be at most 100000"),
        ("eval", {"iw_samples": 10**9}, "eval.iw_samples: must be at most 1000000"),
        ("budget", {"patience": 10**9}, "budget.patience: must be at most 100000"),
    ],
)
def test_values_no_run_could_use_are_refused_in_a_suite_file(
    capsys, fresh_plugins, workdir, table, value, needle
):
    keys = {"budget": value} if table == "budget" else {}
    text = tiny_suite(**keys)
    if table == "eval":
        text = text.replace("iw_samples = 2", f"iw_samples = {value['iw_samples']}")
    (workdir / "t.toml").write_text(text)
    assert needle in _bench_user_error(capsys, "run", "--suite", "t.toml", "--quiet")


def test_list_shows_the_values_after_the_overrides(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    args = ["run", "--suite", "t.toml", "--list", "--set", "budget.epochs=3"]
    code, out, err = run_cli(capsys, *args, "--set", "eval.iw_samples=7")
    assert code == 0, err
    assert "budget: epochs=3 " in out and "eval:   iw_samples=7 " in out


def test_a_nan_parameter_is_refused():
    from bench.errors import ConfigError
    from bench.specs import float_param

    with pytest.raises(ConfigError, match="beta: expected a number, got nan"):
        float_param(1.0, minimum=0.0).check(float("nan"), "beta")


def test_a_model_too_large_for_memory_is_refused_before_it_is_built(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    args = ["run", "--suite", "t.toml", "--quiet", "--set", "model.mlp-vae.hidden=100000000"]
    line = _bench_user_error(capsys, *args)
    assert "model 'mlp-vae' (plugin 'vae', " in line
    assert "its weights, gradients and Adam's moments would take at least" in line
    assert line.endswith("lower the model's size (its parameters)")


@pytest.mark.parametrize(
    ("room", "needle"),
    [
        (1_000, "one training batch of 100 would take at least"),
        (10**6, "evaluation with eval.iw_samples=100000, eval.batch_size=100"),
    ],
)
def test_a_batch_or_an_evaluation_that_cannot_fit_is_refused_in_one_line(
    capsys, fresh_plugins, workdir, monkeypatch, room, needle
):
    from bench.runner import memory

    # The weights fit whatever the room; the batch and the evaluation do not.
    monkeypatch.setattr(memory, "OPTIMIZER_COPIES", 0)
    monkeypatch.setattr(memory, "available_bytes", lambda device, share=1: room)
    (workdir / "t.toml").write_text(tiny_suite())
    args = ["run", "--suite", "t.toml", "--quiet", "--set", "eval.iw_samples=100000"]
    line = _bench_user_error(capsys, *args)
    assert needle in line
    assert not list(workdir.glob("results/t/custom/g__*"))
