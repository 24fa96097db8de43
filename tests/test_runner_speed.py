"""Runner speed options: no host syncs per step, TrainStep with compile / bf16 autocast,
records of the options, and ``--jobs N`` (cells in separate processes)."""

from __future__ import annotations

import collections
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import Budget, EvalSettings, Group, ModelSpec, Suite, hookimpl, plugins
from bench.cli import main
from bench.errors import ConfigError
from bench.runner import FiniteCheck, TrainStep, run_suite, train_cell
from bench.runner import cell as runner_mod
from bench.specs import MetricValue
from bench.suites import expand
from tests.helpers.suites import SMALL_MLP, cpu_options, one_group_suite

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_suite(models=("mlp-vae",), seeds=(0,), epochs=2, optimizer="adam") -> Suite:
    group = Group(
        "g",
        ("digits",),
        models,
        ("elbo",),
        seeds=seeds,
        metrics=("neg_elbo", "nll", "mi", "au"),
        model_params={m: dict(SMALL_MLP) for m in models},
        budget=Budget(epochs=epochs, batch_size=50, optimizer=optimizer),
        eval=EvalSettings(iw_samples=5, batch_size=300),
    )
    return one_group_suite("speed", group)


class HostReads(TorchDispatchMode):
    """Counts ops that read a tensor's value on the host (``.item()``, ``float()``, ``bool()``):
    on a GPU each is a sync that stalls the queue."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.startswith(("_local_scalar_dense", "item", "is_nonzero")):
            self.counts[func.__name__] += 1
        return func(*args, **(kwargs or {}))


def test_training_loop_never_reads_the_device(fresh_plugins, workdir, monkeypatch):
    """2 epochs x 24 steps with evaluation stubbed out: at most one host read per epoch.

    SGD, because Adam reads its CPU-side step counters with ``.item()`` (harmless on a GPU,
    where those counters stay on the host, but they would hide the runner's own reads here).
    """
    score = {runner_mod.SELECTION_METRIC: MetricValue(0.0)}  # what evaluate always returns
    monkeypatch.setattr(runner_mod, "evaluate", lambda *a, **k: score)
    (cell,) = expand("speed", "s", tiny_suite(optimizer="sgd").groups["s"])
    reads = HostReads()
    with reads:
        record = train_cell(cell, workdir / "r" / "s" / "s" / cell.run_id, cpu_options(workdir))
    assert record["status"] == "finished" and record["steps"] == 48
    assert sum(reads.counts.values()) <= 2, reads.counts


def test_finite_check_reads_one_check_late():
    check = FiniteCheck(torch.device("cpu"))
    assert check.check(torch.tensor(1.0), 100)
    assert check.check(torch.tensor(math.nan), 200)  # not read yet: no wait for the device
    assert not check.check(torch.tensor(1.0), 300)
    assert check.bad_step == 200


def _steps(model_seed_batch, **kw) -> list[float]:
    from bench_vae.mlp import MLPVAE

    torch.manual_seed(0)
    model = MLPVAE((1, 8, 8), skip=True, enc_layers=2, dec_layers=2, **SMALL_MLP)
    step = TrainStep(
        model,
        torch.optim.Adam(model.parameters(), 1e-3),
        lambda log_px, kl, s: (-log_px + kl.sum(-1)).mean(),
        5.0,
        torch.device("cpu"),
        **kw,
    )
    gen = torch.Generator().manual_seed(0)
    return [float(step(model_seed_batch, i, gen)[0]) for i in range(3)]


def test_train_step_compiled_and_autocast():
    x = torch.bernoulli(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    eager = _steps(x)
    # The compile wiring with dynamo's eager backend: same ops, so the same numbers.
    assert _steps(x, compile="eager") == pytest.approx(eager, rel=1e-6)
    bf16 = _steps(x, amp=True)
    assert all(math.isfinite(v) for v in bf16)
    assert bf16 == pytest.approx(eager, rel=0.05)  # bf16 matmuls, fp32 loss


def test_options_are_recorded(fresh_plugins, workdir):
    suite = tiny_suite(epochs=1)
    _, (plain,) = run_suite(suite, None, cpu_options(workdir / "a"))
    _, (fast,) = run_suite(
        suite, None, cpu_options(workdir / "b", amp=True, amp_eval=False, channels_last=True)
    )
    assert plain["accel"] == {
        "amp": None,
        "amp_eval": None,
        "tf32": False,
        "tf32_flags": {"matmul": False, "cudnn_conv": False, "cudnn_rnn": False},
        "deterministic": False,
        "cudnn_benchmark": False,
        "compile": None,
        "channels_last": False,
        "torch_threads": 1,
    }
    assert fast["accel"]["amp"] == "bf16" and fast["accel"]["amp_eval"] is None
    assert fast["status"] == "finished" and math.isfinite(fast["metrics"]["nll"]["value"])


def test_jobs_gives_the_records_of_one_job(fresh_plugins, workdir):
    suite = tiny_suite(models=("mlp-vae", "mlp-skip-vae"), epochs=1)
    _, one = run_suite(suite, None, cpu_options(workdir / "one"))
    logged: list[str] = []
    # The CPU twice stands in for two GPUs: each worker takes the next device in the list.
    devices = (torch.device("cpu"), torch.device("cpu"))
    _, two = run_suite(
        suite, None, cpu_options(workdir / "two", jobs=2, devices=devices, log=logged.append)
    )
    assert [r["run_id"] for r in two] == [r["run_id"] for r in one]
    for a, b in zip(one, two, strict=True):
        assert a["metrics"] == b["metrics"]  # own seed per cell: identical results
        assert (workdir / "two/results/speed/s" / b["run_id"] / "record.json").exists()
    assert any("2 processes on cpu, cpu" in m for m in logged)
    assert sorted(m for m in logged if m.startswith("worker ")) == [
        "worker 1 trains on cpu",
        "worker 2 trains on cpu",
    ]
    assert any(" epoch 1 of " in m for m in logged)  # worker logs reach the parent


def test_jobs_refuses_in_process_plugins(fresh_plugins, workdir):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("local-vae", build=lambda info: None))

    plugins.register_plugin(Plugin(), "local")
    suite = tiny_suite(models=("local-vae",), seeds=(0, 1))
    with pytest.raises(ConfigError, match="local"):
        run_suite(suite, None, cpu_options(workdir, jobs=2))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--amp", "--fp32-eval", "--compile", "nope"], "nope"),
        (["--fp32-eval"], "--amp"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_cli_speed_flags_fail_in_one_line(fresh_plugins, workdir, capsys, args, words):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--suite", "collapse", "--scale", "smoke", "--quiet", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and words in err and len(err.splitlines()) == 1
