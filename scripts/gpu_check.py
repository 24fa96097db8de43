#!/usr/bin/env python3
"""The GPU check: one prepared script, at most 8 minutes, for a short lent-GPU window.

How to run it (data, wheels, the device command): docs/gpu-check.md. In short, on the GPU
machine from the repository root, after ``scripts/gpu_check.sh`` installed what is missing::

    BENCH_OFFLINE=1 BENCH_DATA_DIR=.gpu-carry/datasets python3 scripts/gpu_check.py --out $OUT

and on the CPU, as the test suite does, ``python scripts/gpu_check.py --tiny --out DIR``.

Stages, in this order, each in its own process with a time box (a stage that overruns is
stopped and reported as such; the next one still runs):

1. checks only a GPU can answer (issue 16): the LSTM's dtype under bf16 autocast, the cuDNN /
   cuBLAS fp32 precision flags and what they do to a convolution, an LSTM and a matmul,
   ``--resume`` on the device, and ``--compile reduce-overhead`` and ``--compile
   max-autotune`` smoke runs with ``TORCH_LOGS=recompiles``;
2. throughput: ``bench throughput --preset gpu-check``;
3. a short collapse comparison on full PTB: the paper scale's LSTM VAE and skip-VAE
   (``lstm-vae-ref``, ``lstm-skip-vae-ref``), ELBO and KL annealing,
   3 epochs, ``--jobs 4``, a time-boxed K for the test IW-NLL; leaderboard
   ``collapse.gpu-check.md``;
4. CPU-vs-GPU agreement: the smoke MLP cells with one seed on both devices, metrics compared
   within the tolerances in :data:`AGREEMENT`.

``OUT`` receives gpu-check.json (every stage: status, seconds, findings), gpu-check.log, the
throughput JSON, the leaderboard and results.tar.gz (records and leaderboards); at most 8
files, as the device tool returns them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Seconds each stage may take on the GPU (they add up to about 7.5 minutes).
TIME_BOX = {
    "checks": 45,
    "compile-reduce-overhead": 70,
    "compile-max-autotune": 60,
    "throughput": 130,
    "collapse": 120,
    "agreement": 40,
}
TINY_TIME_BOX = 240  # each stage of --tiny, on a busy 2-core CPU

# CPU-vs-GPU agreement: |gpu - cpu| <= max(abs, rel * |cpu|). The devices draw different
# random numbers (batch order, binarization, noise), so the runs agree in distribution, not
# bit for bit; these bounds are a few times the seed-to-seed spread of the smoke cells.
AGREEMENT = {
    "neg_elbo": {"abs": 1.0, "rel": 0.05},
    "nll": {"abs": 1.0, "rel": 0.05},
    "kl": {"abs": 0.75, "rel": 0.25},
    "mi": {"abs": 0.5, "rel": 0.25},
    "au": {"abs": 2.0, "rel": 0.0},
}

SMOKE_TOML = """
name = "{name}"
[[group]]
name = "mlp"
datasets = ["digits"]
models = ["mlp-vae"]
objectives = ["elbo"]
metrics = ["neg_elbo", "nll", "kl"]
[group.model_params.mlp-vae]
hidden = 64
latent_dim = 8
[group.budget]
epochs = {epochs}
batch_size = 50
train_subset = 620
valid_subset = 100
test_subset = 100
[group.eval]
iw_samples = 10
batch_size = 100
"""

TEXT_GROUP = """
[[group]]
name = "lstm"
datasets = ["text-synthetic"]
models = ["lstm-vae"]
objectives = ["elbo"]
metrics = ["neg_elbo", "nll", "kl"]
[group.model_params.lstm-vae]
latent_dim = 8
emb_dim = 32
hidden = 64
[group.budget]
epochs = {epochs}
batch_size = 32
[group.eval]
iw_samples = 10
batch_size = 50
"""

COLLAPSE_TOML = """
name = "collapse.gpu-check"
description = "LSTM VAE vs skip-VAE on full PTB, 3 epochs (the GPU check)"
[[group]]
name = "lstm-ptb"
datasets = ["{dataset}"]
models = ["lstm-vae-ref", "lstm-skip-vae-ref"]
objectives = ["elbo", "kl-anneal"]
seeds = [0]
{model_params}
[group.objective_params.kl-anneal]
beta0 = 0.1
epochs = {anneal}
[group.budget]
epochs = {epochs}
batch_size = 32
optimizer = "sgd"
lr = 1.0
grad_clip = 5.0
[group.eval]
iw_samples = {k}
batch_size = {eval_batch}
"""

AGREEMENT_TOML = """
name = "agreement"
[[group]]
name = "mlp"
datasets = ["digits"]
models = {models}
objectives = {objectives}
seeds = [0]
metrics = ["neg_elbo", "nll", "kl", "mi", "au"]
{params}
[group.budget]
epochs = {epochs}
batch_size = 50
[group.eval]
iw_samples = {k}
batch_size = 300
"""


# ---- stage 1, in its own process: checks only a GPU can answer ---------------------------


def check_lstm_dtype(device: Any) -> dict[str, Any]:
    """Which dtype the LSTM VAE's LSTMs run in under bf16 autocast (hooks on each nn.LSTM),
    whether a training step's gradients are finite, and, for the record, what a bare
    ``nn.LSTM`` does under the same autocast (cuDNN's rule historically casts to fp16)."""
    import torch
    from torch import nn

    from bench import plugins
    from bench.specs import resolve_params

    regs = plugins.registries()
    data = regs.datasets.get("text-synthetic").load(None).to(device)
    spec = regs.models.get("lstm-vae")
    params = resolve_params(spec.params, {"latent_dim": 8, "emb_dim": 32, "hidden": 64}, "lstm")
    torch.manual_seed(0)
    model = spec.build(data.info, **params).to(device)
    seen: set[str] = set()
    for m in model.modules():
        if isinstance(m, nn.LSTM):
            m.register_forward_hook(lambda mod, args, out: seen.add(str(out[0].dtype)))
    x = next(iter(data.train.batches(32)))[0]
    with torch.autocast(device.type, dtype=torch.bfloat16):
        mu, logvar = model.encode(x)
        z = (mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)).unsqueeze(0)
        loss = -model.log_likelihood(x, z).float().mean()
    loss.backward()
    finite = all(bool(p.grad.isfinite().all()) for p in model.parameters() if p.grad is not None)
    bare = nn.LSTM(8, 8, batch_first=True).to(device)
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bare_dtype = str(bare(torch.randn(2, 3, 8, device=device))[0].dtype)
    except Exception as exc:  # oneDNN on some CPUs rejects it outright
        bare_dtype = f"error: {str(exc).splitlines()[0][:120]}"
    return {
        "lstm_output_dtypes": sorted(seen),
        "bare_nn_lstm_under_bf16_autocast": bare_dtype,
        "grads_finite": finite,
        "ok": seen == {"torch.bfloat16"} and finite,
    }


def check_precision_flags(device: Any) -> dict[str, Any]:
    """The fp32 precision flags as the runner sets them, and their effect: each op's largest
    error against float64 with TF32 off (about 1e-6 relative) and on (about 1e-3)."""
    import torch

    from bench.runner.options import tf32_enabled, tf32_flags

    g = torch.Generator().manual_seed(0)
    img = torch.randn(8, 16, 28, 28, generator=g)
    w = torch.randn(32, 16, 3, 3, generator=g)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 512, generator=g)
    seq = torch.randn(8, 20, 64, generator=g)
    lstm = torch.nn.LSTM(64, 128, batch_first=True)

    @torch.no_grad()
    def errors() -> dict[str, float]:
        out = {}
        ref = torch.nn.functional.conv2d(img.double(), w.double())
        got = torch.nn.functional.conv2d(img.to(device), w.to(device)).cpu().double()
        out["conv"] = float((got - ref).abs().max() / ref.abs().max())
        ref = a.double() @ b.double()
        got = (a.to(device) @ b.to(device)).cpu().double()
        out["matmul"] = float((got - ref).abs().max() / ref.abs().max())
        ref = lstm.double()(seq.double())[0]
        got = lstm.float().to(device)(seq.to(device))[0].cpu().double()
        lstm.cpu()
        out["lstm"] = float((got - ref).abs().max() / ref.abs().max())
        return out

    cudnn = torch.backends.cudnn
    result: dict[str, Any] = {
        "defaults": tf32_flags(),
        "cudnn_version": cudnn.version() if cudnn.is_available() else None,
    }
    for label, on in (("tf32_off", False), ("tf32_on", True)):
        with tf32_enabled(on):
            result[label] = {"flags": tf32_flags(), "relative_error": errors()}
    off = result["tf32_off"]
    result["ok"] = not any(off["flags"].values()) and max(off["relative_error"].values()) < 1e-4
    return result


def check_resume(device: Any, workdir: Path) -> dict[str, Any]:
    """A 2-epoch cell killed after epoch 0 and resumed on the device reproduces the
    uninterrupted run (losses and test NLL), and Adam's step counters stay on the host."""
    from bench import hookimpl, plugins
    from bench.runner import CellTraining, RunOptions, run_suite
    from bench.suites import load_suite_file

    path = workdir / "resume.toml"
    path.write_text(SMOKE_TOML.format(name="resume", epochs=2))
    suite = load_suite_file(path)

    class Kill:
        @hookimpl
        def on_epoch_end(self, cell, epoch, metrics):
            if epoch == 0:
                raise KeyboardInterrupt

    def opts(folder: str, **kw: Any) -> RunOptions:
        return RunOptions(results_dir=workdir / folder, device=device, **kw)

    _, (ref,) = run_suite(suite, None, opts("resume-ref"))
    plugins.register_plugin(Kill(), "kill")
    try:
        run_suite(suite, None, opts("resume"))
    except KeyboardInterrupt:
        pass
    finally:
        plugins.unregister_plugin("kill")
    steps: list[str] = []
    resume = CellTraining.resume

    def resume_and_look(self: Any) -> None:
        resume(self)
        steps.extend(str(s["step"].device) for s in self.parts.optimizer.state.values())

    CellTraining.resume = resume_and_look  # type: ignore[method-assign]
    try:
        _, (again,) = run_suite(suite, None, opts("resume", resume=True))
    finally:
        CellTraining.resume = resume  # type: ignore[method-assign]

    def losses(folder: str) -> list[float]:
        log = workdir / folder / "resume" / "custom" / ref["run_id"] / "epochs.jsonl"
        return [json.loads(line)["train_loss"] for line in log.read_text().splitlines()]

    a, b = losses("resume-ref"), losses("resume")
    close = len(a) == len(b) and all(
        math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b, strict=True)
    )
    nll = (ref["metrics"]["nll"]["value"], again["metrics"]["nll"]["value"])
    return {
        "uninterrupted_losses": a,
        "resumed_losses": b,
        "test_nll": nll,
        "adam_step_devices": sorted(set(steps)),
        "ok": close and math.isclose(*nll, rel_tol=1e-3) and set(steps) <= {"cpu"},
    }


def run_checks(args: argparse.Namespace) -> int:
    import torch

    from bench.runner import resolve_device

    device = resolve_device(args.device)
    work = Path(args.work)
    out: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    for name, fn in (
        ("lstm_dtype", lambda: check_lstm_dtype(device)),
        ("precision_flags", lambda: check_precision_flags(device)),
        ("resume", lambda: check_resume(device, work)),
    ):
        t0 = time.perf_counter()
        try:
            out[name] = fn()
        except Exception as exc:
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: {json.dumps(out[name], default=str)}", flush=True)
    (work / "checks.json").write_text(json.dumps(out, indent=2, default=str))
    return 0 if all(out[n].get("ok") for n in ("lstm_dtype", "precision_flags", "resume")) else 1


# ---- the driver ---------------------------------------------------------------------------


class Log:
    def __init__(self, path: Path) -> None:
        self.fh = path.open("a")

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        self.fh.write(line + "\n")
        self.fh.flush()


def run_stage(
    name: str,
    cmd: list[str],
    box: float,
    log: Log,
    env: dict[str, str] | None = None,
    in_process: bool = False,
) -> dict[str, Any]:
    """``cmd`` in its own process (session), stopped after ``box`` seconds; ``in_process``
    (the CPU rehearsal) calls it here instead, with no time box, to spare the start-ups."""
    log(f"stage {name}: {' '.join(cmd)} (time box {box:.0f}s)")
    t0 = time.perf_counter()
    if in_process:
        return _run_here(name, cmd, t0, log)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=box)
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        output, _ = proc.communicate()
        status = "timed out"
    seconds = time.perf_counter() - t0
    for line in (output or "").splitlines():
        log.fh.write(f"    {name} | {line}\n")
    log(f"stage {name}: {status} in {seconds:.0f}s")
    return {"status": status, "seconds": round(seconds, 1), "output_tail": (output or "")[-2000:]}


def _run_here(name: str, cmd: list[str], t0: float, log: Log) -> dict[str, Any]:
    import contextlib
    import io

    buffer = io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            if cmd[1:3] == ["-m", "bench.cli"]:
                from bench.cli import main as bench_main

                code = bench_main(cmd[3:])
            else:
                code = main(cmd[2:])
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # reported as the stage's failure, as a crash would be
            code = f"{type(exc).__name__}: {exc}"
    output = buffer.getvalue()
    for line in output.splitlines():
        log.fh.write(f"    {name} | {line}\n")
    status = "ok" if code in (0, None) else f"failed (exit {code})"
    seconds = time.perf_counter() - t0
    log(f"stage {name}: {status} in {seconds:.0f}s (in this process)")
    return {"status": status, "seconds": round(seconds, 1), "output_tail": output[-2000:]}


def bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", *args]


def recompile_summary(output: str) -> dict[str, int]:
    return {
        "recompilations": len(re.findall(r"Recompiling function", output)),
        "recompile_limit_hits": len(re.findall(r"recompile_limit", output)),
    }


def _params(cells: dict[str, Any]) -> str:
    """The agreement suite's parameter tables, for the models and objectives it has (a table
    for an item outside the group is refused)."""
    tables = [
        f"[group.model_params.{m}]\nhidden = 128\nlatent_dim = 8"
        for m in ("mlp-vae", "mlp-skip-vae")
        if f'"{m}"' in cells["models"]
    ]
    if '"kl-anneal"' in cells["objectives"]:
        tables.append("[group.objective_params.kl-anneal]\nepochs = 2.0")
    return "\n".join(tables)


def agreement(cpu: Path, gpu: Path) -> dict[str, Any]:
    """Each cell's metrics on both devices, with the differences against :data:`AGREEMENT`."""
    rows, ok = [], True
    for record in sorted(cpu.rglob("record.json")):
        other = gpu / record.relative_to(cpu)
        if not other.exists():
            rows.append({"run_id": record.parent.name, "ok": False, "error": "no GPU record"})
            ok = False
            continue
        a = json.loads(record.read_text())["metrics"]
        b = json.loads(other.read_text())["metrics"]
        for metric, tol in AGREEMENT.items():
            if metric not in a or metric not in b:
                continue
            x, y = a[metric]["value"], b[metric]["value"]
            bound = max(tol["abs"], tol["rel"] * abs(x))
            good = abs(y - x) <= bound
            ok &= good
            rows.append(
                {
                    "run_id": record.parent.name,
                    "metric": metric,
                    "cpu": x,
                    "gpu": y,
                    "difference": y - x,
                    "bound": bound,
                    "ok": good,
                }
            )
    return {"tolerances": AGREEMENT, "rows": rows, "ok": ok and bool(rows)}


def _no_checkpoints(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name.endswith(".pt") else info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the files to bring back")
    p.add_argument("--work", default=None, help="scratch folder [default: OUT/../gpu-check-work]")
    p.add_argument("--device", default=None, help="[default: cuda, or cpu with --tiny]")
    p.add_argument("--tiny", action="store_true", help="a minute-scale CPU rehearsal (tests)")
    p.add_argument("--stages", default="checks,compile,throughput,collapse,agreement")
    p.add_argument("--internal", choices=["checks"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    if args.internal == "checks":
        return run_checks(args)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or out.parent / "gpu-check-work").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = Log(out / "gpu-check.log")
    stages = set(args.stages.split(","))
    box = (lambda name: TINY_TIME_BOX) if args.tiny else (lambda name: TIME_BOX[name])
    here = args.tiny
    epochs = 1 if args.tiny else 2
    dev = ["--device", args.device]
    report: dict[str, Any] = {"tiny": args.tiny, "device": args.device, "stages": {}}
    t_start = time.perf_counter()
    boards = work / "leaderboards"

    if "checks" in stages:
        cmd = [sys.executable, __file__, "--internal", "checks", "--out", str(out)]
        r = run_stage("checks", [*cmd, "--work", str(work), *dev], box("checks"), log, None, here)
        path = work / "checks.json"
        r["findings"] = json.loads(path.read_text()) if path.exists() else None
        report["stages"]["checks"] = r

    if "compile" in stages:
        mlp = SMOKE_TOML.format(name="compile", epochs=epochs)
        (work / "compile-mlp.toml").write_text(mlp)
        (work / "compile-both.toml").write_text(mlp + TEXT_GROUP.format(epochs=epochs))
        # CUDA graphs need CUDA: the CPU rehearsal checks the same wiring with dynamo's eager
        # backend.
        modes = [("reduce-overhead", "both"), ("max-autotune", "mlp")]
        for mode, suite in modes:
            stage = f"compile-{mode}"
            compile_as = "eager" if args.device == "cpu" else mode
            r = run_stage(
                stage,
                bench(
                    "run",
                    *("--suite", str(work / f"compile-{suite}.toml"), *dev, "--quiet"),
                    *("--compile", compile_as, "--results-dir", str(work / stage)),
                    *("--leaderboard-dir", str(work / stage / "boards")),
                ),
                box(stage),
                log,
                env={"TORCH_LOGS": "recompiles"},
                in_process=here,
            )
            r.update(recompile_summary(r["output_tail"]), compile=compile_as)
            records = list((work / stage).rglob("record.json"))
            r["runs"] = {
                q.parent.name: json.loads(q.read_text())["status"] for q in sorted(records)
            }
            report["stages"][stage] = r

    if "throughput" in stages:
        target = work / f"throughput-{'cpu' if args.device == 'cpu' else 'cuda'}.json"
        tp = ["throughput", "--preset", "gpu-check", *dev, "--out", str(target)]
        if args.tiny:
            tp += [
                *("--scale", "smoke", "--models", "mlp-vae", "--synthetic-data"),
                *("--warmup", "1", "--min-time", "0.01", "--repeats", "1", "--jobs", "1"),
                *("--iw-samples", "10", "--iw-examples", "4", "--iw-ref-examples", "2"),
                *("--overhead-examples", "100", "--overhead-repeats", "1", "--budget-s", "120"),
            ]
        else:
            tp += ["--budget-s", str(TIME_BOX["throughput"] - 10)]
        r = run_stage("throughput", bench(*tp), box("throughput"), log, None, here)
        if target.exists():
            shutil.copy(target, out / target.name)
            tp_report = json.loads(target.read_text())
            r["budget"] = tp_report.get("budget")
        report["stages"]["throughput"] = r

    if "collapse" in stages:
        if args.tiny:
            text = dict(dataset="text-synthetic", epochs=1, anneal=1.0, k=5, eval_batch=50)
            text["model_params"] = "\n".join(
                f"[group.model_params.{m}]\nlatent_dim = 8\nemb_dim = 32\nhidden = 64"
                for m in ("lstm-vae-ref", "lstm-skip-vae-ref")
            )
            jobs = "1"
        else:
            # The paper scale's models at their defaults (the paper's sizes); K = 20 keeps the
            # test IW-NLL to about two epochs' work.
            text = dict(dataset="ptb", epochs=3, anneal=2.0, k=20, eval_batch=200)
            text["model_params"] = ""
            jobs = "4"
        (work / "collapse.toml").write_text(COLLAPSE_TOML.format(**text))
        r = run_stage(
            "collapse",
            bench(
                "run",
                *("--suite", str(work / "collapse.toml"), *dev, "--quiet", "--jobs", jobs),
                *("--results-dir", str(work / "results"), "--leaderboard-dir", str(boards)),
            ),
            box("collapse"),
            log,
            in_process=here,
        )
        board = boards / "collapse.gpu-check.md"
        if board.exists():
            shutil.copy(board, out / board.name)
        r["runs"] = {
            q.parent.name: json.loads(q.read_text())["status"]
            for q in sorted((work / "results").rglob("record.json"))
        }
        report["stages"]["collapse"] = r

    if "agreement" in stages:
        if args.tiny:
            cells = dict(epochs=1, k=5, models='["mlp-vae"]', objectives='["elbo"]')
        else:
            both = dict(models='["mlp-vae", "mlp-skip-vae"]', objectives='["elbo", "kl-anneal"]')
            cells = dict(epochs=2, k=100, **both)
        (work / "agreement.toml").write_text(AGREEMENT_TOML.format(**cells, params=_params(cells)))
        runs = {}
        for device in ("cpu", args.device):
            folder = work / f"agreement-{device}-{len(runs)}"
            runs[len(runs)] = folder
            run_stage(
                f"agreement-{device}",
                bench(
                    "run",
                    *("--suite", str(work / "agreement.toml"), "--device", device, "--quiet"),
                    *("--results-dir", str(folder), "--leaderboard-dir", str(folder / "b")),
                ),
                box("agreement") / 2 if not args.tiny else box("agreement"),
                log,
                in_process=here,
            )
        report["stages"]["agreement"] = agreement(runs[0], runs[1])

    report["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    with tarfile.open(out / "results.tar.gz", "w:gz") as tar:
        for folder in ("results", "leaderboards"):
            if (work / folder).exists():
                # Records, logs and boards; not the checkpoints.
                tar.add(work / folder, arcname=folder, filter=_no_checkpoints)
    log(f"done in {report['seconds']:.0f}s; {out / 'gpu-check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
