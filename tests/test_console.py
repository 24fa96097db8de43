"""Watching a run: plain lines off a terminal, the header, the ETA, the summary; and one real
run of a suite whose groups differ only in latent_dim."""

from __future__ import annotations

import io
import json

import polars as pl
import pytest
import torch

from bench import leaderboard as lb
from bench.console import RunConsole
from bench.runner import RunOptions
from bench.suites import Budget, Cell, EvalSettings
from tests.helpers.cli import run_cli
from tests.helpers.records import record
from tests.helpers.suites import group_toml, suite_toml


def cell(run: str) -> Cell:
    return Cell("s", "x", "g", "digits", run, "elbo", 0, {}, {}, {}, (), Budget(), EvalSettings())


def test_plain_lines_header_eta_and_summary(fresh_plugins, workdir):
    err, out = io.StringIO(), io.StringIO()
    show = RunConsole(err=err)
    assert show.progress is None  # not a terminal: no bars
    opts = RunOptions(results_dir=workdir / "results", device=torch.device("cpu"))
    cells = [cell("mlp-vae"), cell("mlp-skip-vae"), cell("other")]
    show.header("s", "x", cells, opts)
    # At once, before data sets load and models are checked: a log shows what started.
    assert "bench run s/x: 3 cells on cpu" in err.getvalue()
    show.on_cell("start", cells[0], None)
    long = "epoch 0: " + ", ".join(f"val metric_{i} {i}.000" for i in range(12))
    show.log(long)
    show.on_cell("end", cells[0], {"status": "finished", "wall_time_s": 100.0})
    elsewhere = {"status": "finished", "wall_time_s": 50.0, "machine": {"hostname": "node-7"}}
    show.on_cell("end", cells[1], elsewhere)
    lines = err.getvalue().splitlines()
    assert "bench run s/x: 3 cells on cpu" in lines[0] and "data " in lines[0]
    assert lines[1].endswith(long)  # whole, unwrapped, no source location
    assert "run 1 of 3: g__digits__mlp-vae__elbo__s0 finished in 1m40s; ETA 3m20s" in lines[2]
    assert "run 2 of 3: g__digits__mlp-skip-vae__elbo__s0 finished on node-7 in 50s" in lines[3]
    assert show.eta() == pytest.approx(75.0)
    assert not any(".py:" in ln for ln in lines)
    records = [record(), record(model="mlp-skip-vae"), record(seed=1, status="failed")]
    board = lb.build(records, "s", "x")
    show.summary(board, records, out=out)
    text = out.getvalue()
    assert "NLL (IW) ↓" in text and "AU ↑" in text and "Train ex/s" not in text  # headline only
    assert "mlp-skip-vae" in text and "runs that did not finish" in text
    assert "diverged: loss is nan" in text


def latent_dim_group(name: str, latent_dim: int) -> str:
    return group_toml(
        name,
        objectives=["kl-anneal"],
        model_params={"mlp-vae": {"hidden": 32, "latent_dim": latent_dim}},
        objective_params={"kl-anneal": {"epochs": 2.0}},
        budget={"epochs": 1, "batch_size": 100},
    )


# Two groups that differ only in latent_dim.
TWO_DIMS = suite_toml(
    "twodims",
    latent_dim_group("small", 4),
    latent_dim_group("large", 6),
    columns=["nll", "kl", "mi", "au", "recon"],
)


@pytest.mark.slow
def test_groups_that_differ_in_latent_dim_give_two_rows(capsys, fresh_plugins, workdir):
    path = workdir / "two.toml"
    path.write_text(TWO_DIMS)
    code, out, err = run_cli(capsys, "run", "--suite", str(path))
    assert code == 0, err
    board = (workdir / "results" / "leaderboards" / "twodims.md").read_text()
    rows = [ln for ln in board.splitlines() if ln.startswith("| mlp-vae")]
    assert sorted(r.split(" | ")[0] for r in rows) == [
        "| mlp-vae (latent_dim=4)",
        "| mlp-vae (latent_dim=6)",
    ]
    assert all(r.split(" | ")[2] == "1 †" for r in rows)  # one seed each, never averaged
    header = next(ln for ln in board.splitlines() if ln.startswith("| Model"))
    assert header.split(" | ")[3:] == ["NLL (IW) ↓", "KL ↑", "MI ↑", "AU ↑", "Recon ↓ |"]
    assert "; of=4 (for mlp-vae (latent_dim=4)); of=6 (for mlp-vae (latent_dim=6))" in board
    csv = pl.read_csv(workdir / "results" / "leaderboards" / "twodims.csv")
    assert sorted(csv["model.latent_dim"].to_list()) == [4, 6]
    # The console: header first, epoch lines without source locations, a summary table.
    assert err.splitlines()[0].startswith("[") and "bench run twodims/custom: 2 cells" in err
    assert "cli.py" not in err and "loop.py" not in err
    assert "rows of this run" in out and "mlp-vae (latent_dim=6)" in out
    # A finished run keeps best.pt; its resume checkpoint is gone.
    run_dir = workdir / "results/twodims/custom/small__digits__mlp-vae__kl-anneal__s0"
    assert (run_dir / "best.pt").exists() and not (run_dir / "checkpoint.pt").exists()
    # beta: the mean weight over the epoch's steps (0.1 -> 1 over 2 epochs of 12 steps).
    entry = json.loads((run_dir / "epochs.jsonl").read_text().splitlines()[0])
    steps = entry["step"]
    expected = sum(0.1 + 0.9 * s / (2 * steps) for s in range(steps)) / steps
    assert entry["beta"] == pytest.approx(expected)
    assert entry["val_mi_ceiling"] > 0  # the curves draw it
    # The suite is found again by name.
    code, out, err = run_cli(capsys, "leaderboard", "--suite", "twodims", "--model", "mlp-vae")
    assert code == 0, err
    args = ["-k", "small", "--set", "budget.batch_size=200", "--keep-checkpoints", "--quiet"]
    code, out, err = run_cli(capsys, "run", "--suite", "twodims", *args)
    assert code == 0, err
    # The suite's board keeps its plain rows and their names; the --set run has a board of its
    # own, beside the plain row it varies, each named by the value that sets them apart.
    frame = pl.read_csv(workdir / "results" / "leaderboards" / "twodims.csv")
    assert sorted(frame["model_label"].to_list()) == [
        "mlp-vae (latent_dim=4)",
        "mlp-vae (latent_dim=6)",
    ]
    varied = pl.read_csv(workdir / "results" / "leaderboards" / "twodims-set.csv")
    assert varied.height == 2 and varied["seeds"].to_list() == [1, 1]
    assert sorted(varied["model_label"].to_list()) == [
        "mlp-vae (budget.batch_size=100)",
        "mlp-vae (budget.batch_size=200)",
    ]
    set_dirs = list((workdir / "results/twodims/custom").glob("small__*__set-*"))
    assert len(set_dirs) == 1 and (set_dirs[0] / "checkpoint.pt").exists()
    overridden = json.loads((set_dirs[0] / "record.json").read_text())
    assert overridden["cell"]["overrides"] == ["budget.batch_size=200"]


@pytest.mark.slow  # starts a bench process
def test_the_first_line_comes_through_a_pipe_before_torch_loads(tmp_path):
    """`bench run` says what starts before it imports torch (seconds on a busy machine): the
    stand-in torch below stops the process at its import, after the first line was sent."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "fake"
    (fake / "torch").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text(
        "import sys\nprint('TORCH IMPORT', file=sys.stderr, flush=True)\nraise SystemExit(9)\n"
    )
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(fake), str(root), str(root / "plugins")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "collapse", "--scale", "smoke"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # a pipe, as under nohup, Slurm or `| tee`
        text=True,
    )
    first = proc.stderr.readline()
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 9
    assert "bench run collapse/smoke: starting" in first and first.startswith("[")
    assert rest.splitlines()[0] == "TORCH IMPORT"


@pytest.mark.slow  # trains one smoke cell in a bench process
def test_logs_come_through_a_pipe_line_by_line_and_unwrapped(tmp_path):
    """Under nohup, Slurm or `| tee`: each epoch line is sent when the epoch ends (the
    process is still training when it arrives), whole and with no rich wrapping at 80
    columns, and every log line carries its time."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cell = "mlp__digits__mlp-vae__elbo__s0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "collapse", "--scale", "smoke"]
        + ["-k", cell, "--device", "cpu"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins")])},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if f"{cell} epoch 1 of 4:" in line:
            still_training = proc.poll() is None
            break
    lines += proc.stderr.read().splitlines()
    assert proc.wait(timeout=300) == 0, "\n".join(lines)
    assert still_training  # sent at the end of epoch 1, not at exit
    epochs = [ln for ln in lines if f"{cell} epoch " in ln]
    assert len(epochs) == 4 and all(len(ln) > 80 and "val recon" in ln for ln in epochs)
    assert all(ln.startswith("[") and ln[9:11] == "] " for ln in lines if cell in ln)
