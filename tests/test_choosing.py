"""Choosing what to run: --list, -k and the filters, --set overrides, bench show."""

from __future__ import annotations

import pytest

from bench import plugins
from bench.errors import ConfigError
from bench.runner import select_cells
from bench.selection import CellFilter, apply_overrides, parse_override
from bench.suites import fingerprint, resolved_settings
from tests.helpers.cli import assert_user_error, run_cli


def every_suite_and_scale():
    plugins.reset()
    out = [(s.name, scale) for s in plugins.registries().suites for scale in s.scales]
    plugins.reset()
    return out


@pytest.mark.parametrize(("suite", "scale"), every_suite_and_scale())
def test_list_and_k_work_on_every_registered_suite(capsys, fresh_plugins, workdir, suite, scale):
    code, out, err = run_cli(capsys, "run", "--suite", suite, "--scale", scale, "--list")
    assert code == 0, err
    _, cells = select_cells(plugins.registries().suites.get(suite), scale)
    assert out.splitlines()[0] == f"{suite}/{scale}: {len(cells)} cell" + (
        "s" if len(cells) != 1 else ""
    )
    for cell in cells:
        assert cell.run_id in out
    assert "budget: epochs=" in out and "eval:   iw_samples=" in out
    assert not (workdir / "results").exists()  # listing runs nothing
    # -k picks one cell by its run id.
    target = cells[-1].run_id
    code, out, err = run_cli(
        capsys, "run", "--suite", suite, "--scale", scale, "--list", "-k", target
    )
    assert code == 0, err
    listed = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and "__s" in ln]
    assert [ln.split()[0] for ln in listed] == [c.run_id for c in cells if target in c.run_id]


def test_filters_combine_and_name_unknown_values(fresh_plugins):
    suite = plugins.registries().suites.get("collapse")
    _, cells = select_cells(suite, "smoke")
    kept = CellFilter(models=("mlp-vae", "mlp-skip-vae"), objectives=("elbo",)).apply(cells, "x")
    assert {(c.model, c.objective) for c in kept} == {("mlp-vae", "elbo"), ("mlp-skip-vae", "elbo")}
    kept = CellFilter(substrings=("lstm-vae", "pixelcnn-vae"), seeds=(0,)).apply(cells, "x")
    assert {c.model for c in kept} == {"lstm-vae", "pixelcnn-vae"}
    with pytest.raises(ConfigError, match="--model mlp-vea: no cell of x has it.*'mlp-vae'"):
        CellFilter(models=("mlp-vea",)).apply(cells, "x")
    with pytest.raises(ConfigError, match="no cell of x matches -k nothing-like-this"):
        CellFilter(substrings=("nothing-like-this",)).apply(cells, "x")


def test_set_overrides_are_recorded_and_change_the_fingerprint(fresh_plugins):
    suite = plugins.registries().suites.get("collapse")
    _, cells = select_cells(suite, "smoke")
    cells = CellFilter(datasets=("digits",), objectives=("elbo",)).apply(cells, "x")
    changed = apply_overrides(cells, ["budget.epochs=1", "model.mlp-vae.latent_dim=4"])
    plain = {c.run_id: c for c in cells}
    for before, after in zip(cells, changed, strict=True):
        assert after.budget.epochs == 1
        assert after.run_id.startswith(before.run_id + "__set-")  # a folder of its own
        assert "budget.epochs=1" in after.overrides and after.as_dict()["overrides"]
        assert "overrides" not in before.as_dict()
        f_before = fingerprint(resolved_settings(before.as_dict()))
        assert fingerprint(resolved_settings(after.as_dict())) != f_before
    vae = next(c for c in changed if c.model == "mlp-vae")
    skip = next(c for c in changed if c.model == "mlp-skip-vae")
    assert vae.model_params["latent_dim"] == 4 and skip.model_params["latent_dim"] == 8
    assert "model.mlp-vae.latent_dim=4" not in skip.overrides
    assert set(plain) & {c.run_id for c in changed} == set()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("budget.epoch=2", "budget has no 'epoch' (did you mean 'epochs'?)"),
        ("budget.epochs=two", "expected int"),
        ("epochs=2", "the key is part.key"),
        ("budget.epochs", "expected key=value"),
    ],
)
def test_bad_overrides_are_one_line(fresh_plugins, text, needle):
    with pytest.raises(ConfigError, match="^--set ") as info:
        parse_override(text)
    assert needle in str(info.value)


def test_parameter_overrides_must_apply_somewhere(capsys, fresh_plugins, workdir):
    args = ["run", "--suite", "collapse", "--scale", "smoke", "--list", "-k", "mlp"]
    assert_user_error(
        capsys, [*args, "--set", "model.latnt_dim=4"], "no selected model takes 'latnt_dim'"
    )
    assert_user_error(
        capsys, [*args, "--set", "model.mlp-vea.hidden=4"], "no selected cell has model 'mlp-vea'"
    )
    code, out, _ = run_cli(capsys, *args, "--set", "objective.lam=0.25", "--set", "budget.lr=1e-2")
    assert code == 0
    assert "lr=0.01" in out and "(--set objective.lam=0.25, budget.lr=1e-2)" in out


def test_show_and_ls_params(capsys, fresh_plugins):
    code, out, err = run_cli(capsys, "show", "model", "mlp-vae")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("latent_dim"))
    assert line.split()[:2] == ["latent_dim", "20"] and "2 .. 64 (step 1)" in line
    assert "latent dimensions" in line
    code, out, _ = run_cli(capsys, "show", "objective", "kl-anneal")
    assert "beta0" in out and "0 .. 1" in out
    code, out, _ = run_cli(capsys, "show", "metric", "kl")
    assert "direction: max (higher is better)" in out and "column title: KL" in out
    code, out, _ = run_cli(capsys, "show", "suite", "collapse")
    assert "quick: 2 groups" in out and "budget: epochs=3" in out
    code, out, _ = run_cli(capsys, "ls", "models", "--params")
    assert "latent_dim=20" in out and "hidden=300" in out
    assert_user_error(capsys, ["show", "model", "mlp-vea"], "unknown model 'mlp-vea'")


def test_tune_takes_the_filters_and_threads(capsys, fresh_plugins, workdir, monkeypatch):
    from bench.tune.command import TuneArgs, check_args, worker_argv

    monkeypatch.delenv("BENCH_TUNE_STORAGE", raising=False)
    base = ["tune", "--suite", "collapse", "--scale", "smoke", "--n-trials", "1"]
    assert_user_error(
        capsys, [*base, "-k", "nothing-like-this"], "no cell of collapse/smoke matches"
    )
    assert_user_error(capsys, [*base, "--threads", "0"], "--threads")
    args = TuneArgs(
        suite_name="collapse",
        scale="smoke",
        cell_filter=CellFilter(substrings=("mlp-vae__elbo",), seeds=(0,)),
        n_trials=1,
        multi_objective=False,
        storage=None,
        workers=2,
        sampler="tpe",
        pruner="median",
        sampler_seed=None,
        space_file=None,
        heartbeat=30,
        grace=None,
        device="cpu",
        data_dir=None,
        results_dir=str(workdir / "results"),
        threads=1,
        quiet=True,
        worker_index=None,
    )
    plan = check_args(args)
    assert [t.base.run_id for t in plan.targets] == ["mlp__digits__mlp-vae__elbo__s0"]
    argv = worker_argv(args, plan)
    assert argv[argv.index("-k") + 1] == "mlp-vae__elbo" and argv[argv.index("--seed") + 1] == "0"
    assert argv[argv.index("--threads") + 1] == "1"
