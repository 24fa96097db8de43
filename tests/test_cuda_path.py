"""The CUDA-specific paths, checked on the CPU: compilation per cell without a silent eager
fallback, CUDA-graph detection, resume onto another device, TF32 flags, IW-NLL chunks, LSTM
dtypes under autocast, text widths under CUDA graphs, cuda:N, determinism, fused Adam."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest
import torch
from bench_text import corpus
from bench_text.lstm import LSTMVAE, run_lstm
from torch import nn

from bench import Budget, EvalSettings, Group, Suite, hookimpl, plugins
from bench.cli import main
from bench.errors import ConfigError
from bench.estimators import (
    DEVICE_SHARE_ENV,
    SampleChunker,
    iw_log_likelihood,
    iw_memory_budget,
)
from bench.runner import (
    CellTraining,
    RunOptions,
    TrainStep,
    eval_log_likelihood,
    resolve_device,
    run_suite,
)
from bench.runner import cell as cell_parts
from bench.runner import compiled as compiled_mod
from bench.runner import parallel as parallel_mod
from bench.runner.options import (
    check_options,
    compile_kwargs,
    device_flags,
    tf32_enabled,
    tf32_flags,
    uses_cudagraphs,
    without_cudagraphs,
)
from bench.suites import expand
from tests.helpers.suites import SMALL_MLP, cpu_options, one_group_suite, suite_toml

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


def tiny_suite(models=("mlp-vae",), epochs=1, optimizer="adam", dataset="digits", **kw) -> Suite:
    params = SMALL_MLP if dataset == "digits" else {"latent_dim": 4, "emb_dim": 8, "hidden": 8}
    group = Group(
        "g",
        (dataset,),
        models,
        ("elbo",),
        seeds=(0,),
        metrics=("neg_elbo", "nll"),
        model_params={m: dict(params) for m in models},
        budget=Budget(
            epochs=epochs,
            batch_size=50,
            optimizer=optimizer,
            train_subset=110,  # two full batches and a ragged one
            valid_subset=60,
            test_subset=60,
        ),
        eval=EvalSettings(iw_samples=3, batch_size=40),
        **kw,
    )
    return one_group_suite("cuda", group)


def mlp_model():
    from bench_vae.mlp import MLPVAE

    torch.manual_seed(0)
    return MLPVAE((1, 8, 8), skip=True, enc_layers=1, dec_layers=1, **SMALL_MLP)


# ---- 1. compilation: one cache per cell, no silent eager fallback ------------------------


class LimitHits(logging.Handler):
    """Dynamo's only sign of a fallback to eager: a warning that the limit was hit."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "recompile_limit" in record.getMessage() or "cache_size_limit" in record.getMessage():
            self.messages.append(record.getMessage())


@pytest.mark.slow
def test_compiled_cells_never_fall_back_to_eager(fresh_plugins, workdir, monkeypatch):
    """Two compiled cells of two models in one process (as ``bench run --compile`` trains
    them), with dynamo's limit lowered to 2 so that a cache shared by the cells overflows."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)
    monkeypatch.setattr(compiled_mod, "RECOMPILE_LIMIT", 2)
    hits = LimitHits()
    logger = logging.getLogger("torch._dynamo.convert_frame")
    logger.addHandler(hits)
    torch._logging.set_logs(recompiles=True)
    try:
        before = counters["stats"]["unique_graphs"]
        suite = tiny_suite(models=("mlp-vae", "mlp-skip-vae"))
        _, records = run_suite(suite, None, cpu_options(workdir, compile="eager", amp=True))
        graphs = counters["stats"]["unique_graphs"] - before
    finally:
        logger.removeHandler(hits)
        torch._logging.set_logs()
    assert hits.messages == []
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert all(r["accel"]["compile"] == "eager" for r in records)
    # Each cell compiled its train step and its evaluation decoder afresh.
    assert graphs >= 4, graphs


def test_a_recompile_past_the_limit_fails_loudly(monkeypatch):
    monkeypatch.setattr(compiled_mod, "RECOMPILE_LIMIT", 1)
    compiled_mod.fresh_compile_cache()

    def double(x):
        return x * 2

    fn = compiled_mod.compile_fn(double, {"backend": "eager"})
    assert fn(torch.ones(3)).tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(compiled_mod.RecompileLimitError, match="double"):
        fn(torch.ones(3, dtype=torch.float64))  # a new dtype needs a second entry
    compiled_mod.fresh_compile_cache()


def test_batch_dimension_is_dynamic_from_the_first_call():
    from torch._dynamo.utils import counters

    compiled_mod.fresh_compile_cache()
    model = mlp_model()
    step = TrainStep(
        model,
        torch.optim.SGD(model.parameters(), 1e-3),
        lambda log_px, kl, s: (-log_px + kl.sum(-1)).mean(),
        None,
        CPU,
        compile="eager",
    )
    before = counters["stats"]["unique_graphs"]
    for n in (32, 32, 7):  # full batches, then a ragged last one
        step(torch.bernoulli(torch.full((n, 1, 8, 8), 0.5)), 0)
    assert counters["stats"]["unique_graphs"] - before == 1
    compiled_mod.fresh_compile_cache()


def test_epoch_log_has_the_rate_without_compile_time(fresh_plugins, workdir):
    _, (record,) = run_suite(tiny_suite(), None, cpu_options(workdir, compile="eager"))
    run_dir = workdir / "results/cuda/s" / record["run_id"]
    (first,) = [json.loads(x) for x in (run_dir / "epochs.jsonl").read_text().splitlines()]
    assert first["compile_s"] > 0
    assert first["train_examples_per_s_excl_compile"] > first["train_examples_per_s"]
    assert record["compile_time_s"] == pytest.approx(first["compile_s"])


# ---- 2. CUDA graphs --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, graphs, for_eval",
    [
        ("reduce-overhead", True, {"mode": "default"}),
        ("max-autotune", True, {"mode": "max-autotune-no-cudagraphs"}),
        ("cudagraphs", True, None),
        ("default", False, {}),
        ("max-autotune-no-cudagraphs", False, {"mode": "max-autotune-no-cudagraphs"}),
        ("eager", False, {"backend": "eager"}),
    ],
)
def test_cuda_graphs_are_detected_from_the_mode_options(value, graphs, for_eval):
    kw = compile_kwargs(value)
    assert uses_cudagraphs(kw) is graphs
    assert without_cudagraphs(kw) == for_eval
    model = mlp_model()
    step = TrainStep(
        model, torch.optim.SGD(model.parameters(), 0.1), None, None, CPU, compile=value
    )
    assert step.cudagraphs is graphs  # compiled lazily: nothing runs here
    if graphs:
        with pytest.raises(ConfigError, match="CUDA graphs"):
            check_options(RunOptions(results_dir=".", device=CPU, compile=value))


def test_evaluation_never_replays_cuda_graphs(monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.append(kw) or fn)
    model = mlp_model()
    assert eval_log_likelihood(model, CPU, False, "cudagraphs") is None  # nothing else to do
    assert eval_log_likelihood(model, CPU, False, "max-autotune") is not None
    assert seen == [{"dynamic": True, "mode": "max-autotune-no-cudagraphs"}]


# ---- 3. resume -------------------------------------------------------------------------


class Kill:
    @hookimpl
    def on_epoch_end(self, cell, epoch, metrics):
        if epoch == 0:
            raise KeyboardInterrupt


def test_resume_loads_to_the_cpu_whatever_the_device(fresh_plugins, workdir, monkeypatch):
    """A checkpoint read as if the run's device were an accelerator (meta here): the RNG
    states must come back as CPU tensors and Adam's step counters stay on the host."""
    suite = tiny_suite(epochs=2)
    _, (reference,) = run_suite(suite, None, cpu_options(workdir / "ref"))
    plugins.register_plugin(Kill(), "kill")
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, None, cpu_options(workdir))
    plugins.unregister_plugin("kill")

    resume = CellTraining.resume
    step_devices = []

    def resume_elsewhere(self):
        opts, self.opts = self.opts, dataclasses.replace(self.opts, device=torch.device("meta"))
        try:
            resume(self)
        finally:
            self.opts = opts
        step_devices.extend(s["step"].device.type for s in self.parts.optimizer.state.values())

    monkeypatch.setattr(CellTraining, "resume", resume_elsewhere)
    _, (resumed,) = run_suite(suite, None, cpu_options(workdir, resume=True))
    assert step_devices and set(step_devices) == {"cpu"}
    run = workdir / "results/cuda/s" / resumed["run_id"] / "epochs.jsonl"
    ref = workdir / "ref/results/cuda/s" / resumed["run_id"] / "epochs.jsonl"
    losses = [json.loads(x)["train_loss"] for x in run.read_text().splitlines()]
    ref_losses = [json.loads(x)["train_loss"] for x in ref.read_text().splitlines()]
    assert losses == pytest.approx(ref_losses, rel=1e-6)
    assert resumed["metrics"]["nll"]["value"] == pytest.approx(
        reference["metrics"]["nll"]["value"], rel=1e-6
    )


# ---- 5. TF32 ---------------------------------------------------------------------------


def test_tf32_off_is_true_fp32_and_on_allows_it(fresh_plugins, workdir):
    before = tf32_flags()
    with tf32_enabled(False):
        assert tf32_flags() == {"matmul": False, "cudnn_conv": False, "cudnn_rnn": False}
    with tf32_enabled(True):
        assert tf32_flags() == {"matmul": True, "cudnn_conv": True, "cudnn_rnn": True}
    assert tf32_flags() == before
    _, (record,) = run_suite(tiny_suite(), None, cpu_options(workdir))
    assert record["accel"]["tf32"] is False
    assert record["accel"]["tf32_flags"] == {
        "matmul": False,
        "cudnn_conv": False,
        "cudnn_rnn": False,
    }


# ---- 6. IW-NLL chunks ------------------------------------------------------------------


def test_iw_nll_is_the_same_for_any_chunk():
    model = mlp_model().eval()
    x = torch.bernoulli(torch.full((5, 1, 8, 8), 0.4, dtype=torch.float32))
    k = 20
    results = [
        iw_log_likelihood(model, x, k, chunk=c, generator=torch.Generator().manual_seed(3))
        for c in (1, 7, k)
    ]
    for r in results[1:]:
        torch.testing.assert_close(r, results[0], rtol=0, atol=1e-4)


def test_iw_nll_halves_the_chunk_after_running_out_of_memory():
    model = mlp_model().eval()
    x = torch.bernoulli(torch.full((4, 1, 8, 8), 0.4))
    expected = iw_log_likelihood(model, x, 12, chunk=12, generator=torch.Generator().manual_seed(0))
    calls = []

    def small_card(x, z):
        calls.append(z.shape[0])
        if z.shape[0] > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return model.log_likelihood(x, z)

    chunker = SampleChunker(model, 12)
    chunker.cap = 12
    got = iw_log_likelihood(
        model,
        x,
        12,
        chunk=chunker,
        generator=torch.Generator().manual_seed(0),
        log_likelihood=small_card,
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert calls[:3] == [12, 6, 3] and chunker.cap == 3  # later batches start at 3


def test_chunk_is_sized_once_from_a_fixed_budget_shared_by_processes(monkeypatch):
    props = type("Props", (), {"total_memory": 80 * 2**30})()
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.delenv(DEVICE_SHARE_ENV, raising=False)
    alone = iw_memory_budget(torch.device("cuda"))
    monkeypatch.setenv(DEVICE_SHARE_ENV, "4")
    assert iw_memory_budget(torch.device("cuda")) == alone // 4
    # One probe per evaluation; later batches scale by their size with no probe and no sync.
    from bench import estimators

    probes = []
    monkeypatch.setattr(
        estimators, "sample_cost", lambda model, x: probes.append(len(x)) or 1000.0 * x.numel()
    )
    chunker = SampleChunker(mlp_model(), 500)
    chunker.budget = 64_000_000
    short, long = torch.zeros(10, 1, 8, 8), torch.zeros(40, 1, 8, 8)
    assert chunker(short) == 100 and chunker(long) == 25 and chunker(short) == 100
    assert probes == [10]


# ---- 7. LSTMs under autocast -----------------------------------------------------------


def lstm_model() -> LSTMVAE:
    torch.manual_seed(0)
    return LSTMVAE(30, 0, 4, 8, 12, 1, 2, 0.0, 0.1, skip=True)


@pytest.mark.parametrize(
    "dtype, expected", [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float32)]
)
def test_lstm_runs_in_bf16_or_fp32_under_autocast_never_fp16(dtype, expected):
    model = lstm_model()
    seen = []
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            m.register_forward_hook(lambda mod, args, out: seen.append(out[0].dtype))
    split = corpus.pack([[1, 5, 6, 7, 2], [1, 8, 2], [1, 9, 10, 11, 12, 2]])
    x = next(split.batches(3))[0]
    with torch.autocast("cpu", dtype=dtype):
        mu, logvar = model.encode(x)
        log_px = model.log_likelihood(x, (mu + torch.randn_like(mu) * logvar.exp()).unsqueeze(0))
    log_px.float().sum().backward()
    assert seen and set(seen) == {expected}
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and g.isfinite().all() for g in grads)


def test_run_lstm_outside_autocast_is_the_module_itself():
    rnn = nn.LSTM(4, 5, batch_first=True)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(run_lstm(rnn, x), rnn(x)[0])


# ---- 8. text widths under CUDA graphs --------------------------------------------------


def test_cuda_graph_training_pads_text_widths(fresh_plugins, workdir):
    (cell,) = expand(
        "cuda", "s", tiny_suite(models=("lstm-vae",), dataset="text-synthetic").groups["s"]
    )
    run = CellTraining(cell, workdir / "run", cpu_options(workdir, compile="reduce-overhead"))
    run.set_up()  # compiles nothing yet: torch.compile is lazy
    assert run.parts.step.cudagraphs
    widths = {x.ids.shape[1] for x, _ in run.parts.train_batches.batches(50, shuffle=True)}
    assert widths and all(w % cell_parts.CUDA_GRAPH_WIDTH_MULTIPLE == 0 for w in widths)
    eager = CellTraining(cell, workdir / "run2", cpu_options(workdir))
    eager.set_up()
    raw = {x.ids.shape[1] for x, _ in eager.parts.train_batches.batches(50, shuffle=True)}
    assert len(widths) < len(raw)
    # Padding is masked: the same sentences score the same.
    model = lstm_model().eval()
    split = corpus.pack([[1, 5, 6, 7, 2], [1, 8, 2]])
    x = next(split.batches(2))[0]
    padded = next(split.padded_to(16).batches(2))[0]
    assert padded.ids.shape[1] == 16
    z = torch.randn(2, 2, 4)
    torch.testing.assert_close(model.log_likelihood(padded, z), model.log_likelihood(x, z))
    torch.testing.assert_close(model.encode(padded)[0], model.encode(x)[0])


# ---- 9. cuda:N -------------------------------------------------------------------------


@pytest.fixture
def two_fake_gpus(monkeypatch):
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    return current


def test_cuda_n_becomes_the_current_device(two_fake_gpus, monkeypatch):
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert two_fake_gpus == [torch.device("cuda:1")]
    with pytest.raises(ConfigError, match="2 CUDA device"):
        resolve_device("cuda:2")
    monkeypatch.setattr(parallel_mod, "_WORKER_OPTS", None)
    monkeypatch.setenv(DEVICE_SHARE_ENV, "1")
    import multiprocessing

    settings = {
        "results_dir": ".",
        "devices": ["cuda:1"],
        "threads": 1,
        "device_share": 3,
        "parent_pid": os.getpid(),
    }
    queue = type("Q", (), {"put": print})()
    parallel_mod._worker_init(settings, queue, multiprocessing.Value("i", 0))
    assert two_fake_gpus[-1] == torch.device("cuda:1")
    assert os.environ[DEVICE_SHARE_ENV] == "3"
    assert parallel_mod._WORKER_OPTS.device == torch.device("cuda:1")


# ---- 11. determinism and 12. small CUDA speed-ups --------------------------------------


TOML = suite_toml(
    "det",
    metrics=["neg_elbo"],
    model_params={"mlp-vae": SMALL_MLP},
    budget={"epochs": 1, "train_subset": 100, "valid_subset": 50, "test_subset": 50},
)


def test_deterministic_option_sets_and_restores_the_flags(fresh_plugins, workdir, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with device_flags(cpu_options(workdir, deterministic=True)):
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert not torch.are_deterministic_algorithms_enabled()
    (workdir / "det.toml").write_text(TOML)
    main(["run", "--suite", str(workdir / "det.toml"), "--quiet", "--deterministic"])
    record = next((workdir / "results").rglob("record.json"))
    assert json.loads(record.read_text())["accel"]["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled()


def test_cudnn_autotuning_only_for_image_cells_on_cuda(workdir):
    cuda = torch.device("cuda")  # only the flag is set: nothing runs on the device
    cases = [
        (RunOptions(results_dir=workdir, device=cuda), True, True),
        (RunOptions(results_dir=workdir, device=cuda), False, False),  # text: widths vary
        (RunOptions(results_dir=workdir, device=cuda, deterministic=True), True, False),
        (cpu_options(workdir), True, False),
    ]
    for opts, fixed_shapes, expected in cases:
        with device_flags(opts, fixed_shapes=fixed_shapes):
            assert torch.backends.cudnn.benchmark is expected
        assert torch.backends.cudnn.benchmark is False


def test_adam_is_fused_on_cuda_only(monkeypatch):
    made = []
    monkeypatch.setattr(torch.optim, "Adam", lambda params, **kw: made.append(kw))

    class OnDevice:  # a parameter as make_optimizer sees it: only its device is read
        def __init__(self, device):
            self.device = torch.device(device)

    cell = type("Cell", (), {"budget": Budget(epochs=1, lr=0.01)})()
    cell_parts.make_optimizer(cell, [OnDevice("cuda")])
    cell_parts.make_optimizer(cell, [{"params": [OnDevice("cuda")]}])  # parameter groups
    cell_parts.make_optimizer(cell, [OnDevice("cpu")])
    assert made == [{"lr": 0.01, "fused": True}] * 2 + [{"lr": 0.01}]
