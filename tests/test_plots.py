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


# ---- readable figures --------------------------------------------------------------------------


def saturated_board(n_objectives: int = 3):
    """MNIST-like rows: MI within a tenth of a nat of log N, one row with no active unit."""
    from tests.helpers.records import record

    records = []
    for i in range(n_objectives):
        for model in ("mlp-vae", "mlp-skip-vae"):
            mi = 9.08 + 0.01 * i + (0.02 if model == "mlp-skip-vae" else 0.0)
            r = record(model=model, objective=f"obj-{i:02d}", metrics={"mi": mi, "nll": 100 + i})
            r["metrics"]["mi"]["settings"] = {"n": 10000, "ceiling": 9.2103, "ceiling_margin": 0.1}
            r["metrics"]["au"]["value"] = 0 if (i, model) == (0, "mlp-vae") else 8
            records.append(r)
    return lb.build(records, "q", "quick")


def test_trade_off_axes_fit_the_points_with_units_and_the_ceiling_label_on_top(fresh_plugins):
    from matplotlib.figure import Figure

    board = saturated_board()
    fig = Figure(figsize=plots.legend_size(board), layout="constrained")
    plots._draw_tradeoff(fig, board, "mi")
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert 8.5 < low < 9.08 and 9.21 < high < 9.7  # not from 0: the points are told apart
    assert "nats per example" in ax.get_xlabel() and "nats per example" in ax.get_ylabel()
    (label,) = [t for t in ax.texts if t.get_text().startswith("log N = 9.21")]
    assert label.get_zorder() > max(c.get_zorder() for c in ax.collections + ax.lines)


def test_every_row_has_its_own_style_and_the_legend_fits(fresh_plugins):
    from matplotlib.figure import Figure

    board = saturated_board(14)  # 28 rows, as the remedies board
    style = plots._style(board)
    rows = list(board.table.iter_rows(named=True))
    pairs = {(str(style(r)["color"]), style(r)["marker"]) for r in rows}
    assert len(pairs) == len(rows) == 28
    # Ten hues told apart at a glance (no light/dark pairs of one hue), markers for the rest.
    from matplotlib import colormaps

    hues = {str(colormaps["tab10"](i)) for i in range(10)}
    assert {str(style(r)["color"]) for r in rows} <= hues
    width, height = plots.legend_size(board)
    fig = Figure(figsize=(5 + width, max(4.6, height)), layout="constrained")
    plots._draw_tradeoff(fig, board, "mi")
    fig.canvas.draw()
    (legend,) = fig.legends
    box, page = legend.get_window_extent(), fig.bbox
    assert box.y0 >= page.y0 - 1 and box.y1 <= page.y1 + 1 and box.x1 <= page.x1 + 1
    assert len(legend.get_texts()) == 28 + 2  # every row, the front and the ceiling


def test_active_unit_bars_show_their_count_even_at_zero(fresh_plugins):
    from matplotlib.figure import Figure

    fig = Figure()
    plots._draw_au(fig, saturated_board(1))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(texts) == ["0 / 8", "8 / 8"]


def test_active_unit_bars_carry_their_row_marker_and_labels_that_do_not_overlap(fresh_plugins):
    """A bar of zero is seen (the row's marker sits on the baseline), and the 14 bars of a
    remedies-like panel get names that fit side by side (the shared model goes in the title)."""
    from matplotlib.figure import Figure

    board = saturated_board(14)
    fig = Figure(figsize=plots.au_size(board), layout="constrained")
    plots._draw_au(fig, board)
    fig.canvas.draw()
    ax = fig.axes[0]
    style = plots._style(board)
    rows = [r for r in board.table.iter_rows(named=True) if r["dataset"] == board.datasets[0]]
    baseline = [ln for ln in ax.lines if list(ln.get_ydata()) == [0]]
    assert [ln.get_marker() for ln in baseline] == [style(r)["marker"] for r in rows]
    zero = next(i for i, r in enumerate(rows) if r["au_mean"] == 0)
    assert baseline[zero].get_clip_on() is False  # half below the axis, still drawn
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    assert len(boxes) == len(rows) == 28
    assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:], strict=False))


def test_per_epoch_curves_keep_a_far_ceiling_off_the_axis():
    """Validation MI of a few hundredths is not pressed against zero by a ceiling of 5 nats:
    a far ceiling is named under the axis, a near one drawn."""
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot([1, 2, 3], [0.01, 0.02, 0.03])
    assert plots._curve_ceilings(ax, [0.1, 5.0], "MI") == [5.0]
    assert [t.get_text() for t in ax.texts] == ["log N = 0.10"]
