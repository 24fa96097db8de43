"""Plots: the Pareto front, the figures every leaderboard gets (PNG and SVG), their links."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import leaderboard as lb
from bench import plots
from bench.plots import pareto_front
from bench.reporters import markdown


def test_pareto_front_keeps_points_no_other_point_beats_on_both_axes():
    # (information, NLL): more information and lower NLL are better.
    points = [(0.1, 90.0), (0.5, 91.0), (0.5, 92.0), (2.0, 95.0), (1.0, 96.0), (0.05, 89.0)]
    assert pareto_front(points) == [(0.05, 89.0), (0.1, 90.0), (0.5, 91.0), (2.0, 95.0)]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 2.0)]) == [(1.0, 2.0)]


def fake_run(
    results: Path,
    model: str,
    objective: str,
    seed: int,
    kl: float,
    mi: float,
    nll: float,
    au: float,
    epochs: int = 3,
) -> None:
    """A finished run folder as the runner writes it (record + per-epoch log)."""
    run_id = f"g__digits__{model}__{objective}__s{seed}"
    run_dir = results / "p" / "smoke" / run_id
    run_dir.mkdir(parents=True)
    metrics = {"nll": nll, "kl": kl, "mi": mi, "au": au}
    record = {
        "run_id": run_id,
        "status": "finished",
        "reason": None,
        "cell": {
            "dataset": "digits",
            "model": model,
            "objective": objective,
            "seed": seed,
            "group": "g",
        },
        "metrics": {
            k: {"value": v, "settings": {"n": 10}, "direction": "min"} for k, v in metrics.items()
        },
        "train_examples_per_s": 1000.0,
        "wall_time_s": 1.0,
        "device_name": "cpu",
    }
    (run_dir / "record.json").write_text(json.dumps(record))
    lines = [
        {"epoch": e, "val_kl": kl * (e + 1) / epochs, "val_mi": mi * (e + 1) / epochs, "val_au": au}
        for e in range(epochs)
    ]
    (run_dir / "epochs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.fixture
def board(workdir, fresh_plugins, monkeypatch):
    results = workdir / "runs"
    fake_run(results, "mlp-vae", "elbo", 0, kl=0.1, mi=0.1, nll=90.0, au=1)
    fake_run(results, "mlp-vae", "elbo", 1, kl=0.2, mi=0.1, nll=91.0, au=2)
    fake_run(results, "mlp-skip-vae", "elbo", 0, kl=3.0, mi=2.0, nll=89.5, au=8)
    fake_run(results, "mlp-vae", "free-bits", 0, kl=4.0, mi=1.0, nll=92.0, au=8)
    return lb.build(lb.load_records(results, "p", "smoke"), "p", "smoke")


def test_every_leaderboard_gets_linked_png_and_svg_plots(board, workdir):
    out = workdir / "boards"
    written = lb.write(board, out)
    for stem in ("nll-mi", "nll-kl", "au", "curves"):
        png, svg = out / f"p.smoke.{stem}.png", out / f"p.smoke.{stem}.svg"
        assert str(png) in written and str(svg) in written
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(svg).getroot().tag.endswith("svg")
    md = (out / "p.smoke.md").read_text()
    assert "[NLL vs MI](p.smoke.nll-mi.png)" in md
    assert "[KL, MI and AU per epoch](p.smoke.curves.png)" in md
    assert "![NLL vs MI](p.smoke.nll-mi.png)" in md


def test_curves_need_run_folders_and_plots_can_be_disabled(board, monkeypatch, workdir):
    assert [slug for slug, _ in plots.planned(board)] == ["nll-mi", "nll-kl", "au", "curves"]
    # The curves come from the records' run folders: records without folders, no curves.
    unplaced = lb.build([r.with_(source=None) for r in board.records], "p", "smoke")
    assert "curves" not in [slug for slug, _ in plots.planned(unplaced)]
    with pytest.warns(DeprecationWarning, match="Leaderboard.records"):
        plots.remember_run_dirs("p", "smoke", [])  # the old way: no effect any more
    assert "curves" in [slug for slug, _ in plots.planned(board)]
    monkeypatch.setenv("BENCH_DISABLE_PLUGINS", "plots")
    from bench import plugins

    plugins.reset()
    assert "](p.smoke." not in markdown(board)
