"""The web report without a browser: what the pages hold (the Markdown's columns, flags and
notes; one plot point per row; curves per seed; errors), that nothing is fetched from the
network, the `bench report` command, the opt-in reporter, and drawing from checkpoints.
The browser tests are in tests/test_report_browser.py."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import leaderboard as lb
from bench.records import RunRecord
from bench.report import REPORT_ENV, request
from bench.report.pagedata import row_id
from bench.report.site import SiteOptions, write_board
from bench.reporters import cell_text, markdown
from tests.helpers.cli import assert_user_error, run_cli
from tests.helpers.records import record

SUITE, SCALE = "s", "custom"


def write_run(results: Path, rec: dict, epochs: int = 3, extra: dict | None = None) -> Path:
    """A run folder as the runner leaves it: record.json and epochs.jsonl."""
    rec = {**rec, **(extra or {})}
    run_dir = results / SUITE / SCALE / rec["run_id"]
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps(rec))
    kl = rec["metrics"].get("kl", {}).get("value", 0.0)
    lines = [
        {
            "epoch": e,
            "train_loss": 100.0 - e,
            "train_kl": kl + 0.1,
            "val_neg_elbo": 99.0 - e,
            "val_kl": kl * (e + 1) / epochs,
            "val_mi": 0.5 * (e + 1) / epochs,
            "val_au": e,
        }
        for e in range(epochs)
    ]
    (run_dir / "epochs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir


def saturated_mi(value: float) -> dict:
    return {"value": value, "settings": {"ceiling": 1.0, "ceiling_margin": 0.1}, "direction": "max"}


@pytest.fixture
def results(workdir, fresh_plugins):
    """Three rows of digits (one of two seeds, one with a saturated MI) and a failed run."""
    out = workdir / "results"
    write_run(out, record("mlp-vae", "elbo", 0, metrics={"nll": 90.0, "kl": 0.1, "mi": 0.1}))
    write_run(out, record("mlp-vae", "elbo", 1, metrics={"nll": 91.0, "kl": 0.3, "mi": 0.2}))
    skip = record("mlp-skip-vae", "elbo", 0, metrics={"nll": 89.0, "kl": 3.0})
    skip["metrics"]["mi"] = saturated_mi(0.95)
    write_run(out, skip)
    write_run(out, record("mlp-vae", "free-bits", 0, metrics={"nll": 92.0, "kl": 4.0, "mi": 0.5}))
    failed = record("mlp-skip-vae", "free-bits", 0, status="failed")
    failed["error"] = {"type": "RuntimeError", "message": "boom in the decoder", "log": "error.log"}
    failed["reason"] = "RuntimeError: boom in the decoder"
    run_dir = write_run(out, failed, epochs=1)
    (run_dir / "error.log").write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
    return out


@pytest.fixture
def board(results):
    return lb.build(lb.load_records(results, SUITE, SCALE), SUITE, SCALE)


@pytest.fixture
def site(board, workdir):
    site = workdir / "site"
    write_board(board, site, SiteOptions(media=False))
    return site


def page_text(path: Path) -> str:
    return html.unescape(path.read_text(encoding="utf-8"))


def test_the_board_page_has_the_markdowns_columns_values_flags_and_notes(board, site):
    text = page_text(site / SUITE / SCALE / "index.html")
    md = markdown(board)
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    for title in [t.strip() for t in header.strip("|").split("|")][3:]:
        assert title in text  # "NLL (IW) ↓", "MI ↑", ...
    for row in board.table.iter_rows(named=True):
        for col in board.columns:
            value = cell_text(row, col)
            if value != "–":
                assert value in text and value in md
    assert "⚑" in text and "†" in text
    for note, _ in board.notes["digits"]:
        assert note in text
    assert "Runs that did not finish" in text and "boom in the decoder" in text


def test_each_plot_has_one_point_per_row_named_with_its_seeds_and_values(board, site):
    text = (site / SUITE / SCALE / "index.html").read_text(encoding="utf-8")
    rows = list(board.table.iter_rows(named=True))
    for metric in ("mi", "kl"):
        figure = re.search(
            rf'<figure class="plot" data-metric="{metric}">(.*?)</figure>', text, re.S
        )
        assert figure, metric
        svg = ET.fromstring(re.search(r"<svg.*</svg>", figure.group(1), re.S).group(0))
        points = svg.findall(".//{http://www.w3.org/2000/svg}a")
        assert sorted(p.get("data-row") for p in points) == sorted(row_id(r) for r in rows)
        tips = {p.get("data-row"): p.get("data-tip") for p in points}
        two_seeds = next(r for r in rows if r["seeds"] == 2)
        tip = tips[row_id(two_seeds)]
        assert tip.startswith("mlp-vae / elbo\nseeds: 2 (0, 1)")
        nll = next(c for c in board.columns if c.name == "nll")
        assert cell_text(two_seeds, nll) in tip  # the mean and its spread
        front = [p.get("data-row") for p in points if p.get("data-front")]
        skip = next(r for r in rows if r["model"] == "mlp-skip-vae")  # lowest NLL, most MI
        assert row_id(skip) in front and "on the Pareto front" in tips[row_id(skip)]
        if metric == "kl":  # free bits keeps more KL at a higher NLL: a second front point
            assert len(front) == 2
            assert svg.find(".//{http://www.w3.org/2000/svg}polyline[@class='front']") is not None


def test_a_run_page_has_curves_for_every_seed_settings_and_records(board, site):
    row = next(r for r in board.table.iter_rows(named=True) if r["seeds"] == 2)
    text = (site / SUITE / SCALE / "runs" / f"{row_id(row)}.html").read_text(encoding="utf-8")
    for title in ("Loss (−ELBO)", "KL", "MI", "AU"):
        figure = re.search(rf'data-curve="{re.escape(title)}">(.*?)</figure>', text, re.S)
        assert figure, title
        assert set(re.findall(r'data-seed="(\d+)"', figure.group(1))) == {"0", "1"}
    assert row["fingerprint"] in text
    for rec in board.records_of(row):
        assert rec.run_id in text


def test_a_run_that_did_not_finish_gets_a_page_with_its_error_and_log(site):
    text = page_text(site / SUITE / SCALE / "runs" / "g__digits__mlp-skip-vae__free-bits__s0.html")
    assert "RuntimeError: boom in the decoder" in text
    assert "most recent call last):\nRuntimeError: boom</pre>" in text  # the end of error.log


def test_the_site_loads_nothing_from_the_network(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 6
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for link in re.findall(r'(?:src|href)="([^"]*)"', text):
            assert not re.match(r"^(?:[a-z]+:)?//", link, re.I), (page, link)
    for asset in (site / "assets").iterdir():
        text = asset.read_text(encoding="utf-8")
        assert not re.search(r"https?://|@import|url\(|<script", text), asset


def test_a_value_cannot_break_out_of_the_page(results, workdir, fresh_plugins):
    evil = record("mlp-vae", "elbo", 5, model_params={"hidden": 33})
    evil["data_notes"] = "<script>alert(1)</script></script>"
    write_run(results, evil)
    board = lb.build(lb.load_records(results, SUITE, SCALE), SUITE, SCALE)
    write_board(board, workdir / "site2", SiteOptions(media=False))
    for page in (workdir / "site2").rglob("*.html"):
        assert "<script>alert(1)" not in page.read_text(encoding="utf-8"), page


def test_the_reporter_writes_only_when_asked(board, workdir, monkeypatch):
    from bench import plugins

    monkeypatch.setenv("BENCH_DISABLE_PLUGINS", "plots")  # only the tables and the report
    monkeypatch.delenv(REPORT_ENV, raising=False)
    plugins.reset()
    reporter = plugins.registries().reporters.get("report")
    assert reporter.plugin == "report"
    assert reporter.write(board, workdir / "boards") == []
    assert not (workdir / "boards" / "site").exists()
    monkeypatch.setenv(REPORT_ENV, "1")
    written = lb.write(board, workdir / "boards")
    assert str(workdir / "boards" / "site" / "index.html") in written
    monkeypatch.delenv(REPORT_ENV)
    request(True)  # what `bench run --report` does
    try:
        assert str(workdir / "b2" / "site" / "index.html") in reporter.write(board, workdir / "b2")
    finally:
        request(False)


def test_bench_report_builds_every_result_set_and_says_where(results, workdir, capsys):
    other = record("mlp-vae", "elbo", 0, metrics={"nll": 80.0})
    other_dir = workdir / "other" / "t" / "quick" / other["run_id"]
    other_dir.mkdir(parents=True)
    (other_dir / "record.json").write_text(json.dumps(other))
    out = workdir / "site"
    code, stdout, err = run_cli(
        capsys, "report", "--results-dir", str(results), "--out", str(out), "--no-media",
        "--compare-with", str(workdir / "other"),
    )  # fmt: skip
    assert code == 0, err
    assert f"report: 1 boards ({SUITE}/{SCALE})" in stdout and str(out / "index.html") in stdout
    front = page_text(out / "index.html")
    assert f"{SUITE} · {SCALE}" in front and "5 runs (4 finished)" in front
    sets = re.search(r'id="sets">(.*?)</script>', (out / "compare.html").read_text(), re.S)
    keys = {(s["set"], s["key"]) for s in json.loads(sets.group(1))}
    assert keys == {("this site", f"{SUITE}/{SCALE}"), (str(workdir / "other"), "t/quick")}


def test_bench_report_refuses_what_it_cannot_find(results, workdir, capsys):
    assert_user_error(
        capsys, ["report", "--results-dir", str(results), "--suite", "nope"], "no run records"
    )
    assert_user_error(capsys, ["report", "--results-dir", str(workdir / "empty")], "no run records")


def test_pages_of_rows_that_went_away_are_removed(results, site, fresh_plugins):
    runs = site / SUITE / SCALE / "runs"
    before = {p.name for p in runs.iterdir()}
    gone = results / SUITE / SCALE / "g__digits__mlp-vae__free-bits__s0"
    for p in gone.iterdir():
        p.unlink()
    gone.rmdir()
    board = lb.build(lb.load_records(results, SUITE, SCALE), SUITE, SCALE)
    write_board(board, site, SiteOptions(media=False))
    after = {p.name for p in runs.iterdir()}
    assert len(after) == len(before) - 1


# ---- drawing from checkpoints ---------------------------------------------------------------


def trained_folder(results: Path, rec: dict) -> Path:
    """A run folder whose best.pt holds weights of the record's model (untrained)."""
    import torch

    from bench import plugins
    from bench.data import data_dir

    run_dir = write_run(results, rec)
    regs = plugins.registries()
    dataset = regs.datasets.get(rec["cell"]["dataset"])
    data = dataset.load(data_dir(), **rec["resolved"]["dataset"])
    model = regs.models.get(rec["cell"]["model"]).build(data.info, **rec["resolved"]["model"])
    torch.save(model.state_dict(), run_dir / "best.pt")
    return run_dir


def test_image_grids_are_drawn_from_best_pt(workdir, fresh_plugins):
    from bench.report.media import run_media

    rec = record("mlp-vae", "elbo", 0, model_params={"hidden": 8, "latent_dim": 2})
    trained_folder(workdir / "r", rec)
    loaded = lb.load_records(workdir / "r", SUITE, SCALE)[0]
    media = run_media(loaded, workdir / "media", "row", {})
    assert media.note == "" and [name for _, name in media.images] == [
        "row.samples.png",
        "row.reconstructions.png",
    ]
    for _, name in media.images:
        assert (workdir / "media" / name).read_bytes()[:4] == b"\x89PNG"


def test_sentences_are_decoded_from_best_pt(workdir, fresh_plugins, monkeypatch):
    from bench.report.media import TEXT_SAMPLES, run_media

    monkeypatch.setenv("BENCH_CACHE_DIR", str(workdir / "cache"))
    rec = record("lstm-vae", "elbo", 0, dataset="text-synthetic")
    small = {"emb_dim": 8, "hidden": 8, "latent_dim": 2}
    rec["resolved"]["model"].update(small)
    rec["resolved"]["dataset"].update({"train": 32, "valid": 16, "test": 16})
    trained_folder(workdir / "r", rec)
    loaded = lb.load_records(workdir / "r", SUITE, SCALE)[0]
    media = run_media(loaded, workdir / "media", "row", {})
    assert media.note == "" and len(media.samples) == TEXT_SAMPLES
    assert media.reconstructions and all(a for a, _ in media.reconstructions)


class Payload:
    """Pickled, it would write a file when loaded: a checkpoint must never run it."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def test_a_crafted_checkpoint_runs_no_code_and_the_page_says_why(workdir, fresh_plugins):
    import torch

    from bench.report.media import run_media

    rec = record("mlp-vae", "elbo", 0)
    run_dir = write_run(workdir / "r", rec)
    target = workdir / "pwned.txt"
    torch.save({"weights": Payload(str(target))}, run_dir / "best.pt")
    loaded = RunRecord.from_json(rec, source=run_dir / "record.json")
    media = run_media(loaded, workdir / "media", "row", {})
    assert not target.exists()
    assert media.note.startswith("could not draw from best.pt: UnpicklingError")


# ---- serving ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_rebuilds_the_site_as_runs_finish(results, workdir):
    """`bench report --serve`: the site over HTTP, and a run that finishes while it serves
    gets its page without a restart (the pages reload when stamp.json changes)."""
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.helpers.processes import wait_for

    out = workdir / "site"
    args = ["report", "--serve", "--port", "0", "--results-dir", str(results), "--out", str(out)]
    args += ["--no-media", "--interval", "0.2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_DISABLE_PLUGINS": "plots"},
    )
    try:
        line = ""
        while "serving" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        base = line.split(" at ", 1)[1].split()[0]

        def get(path: str) -> str:
            with urllib.request.urlopen(base + path, timeout=10) as answer:
                assert answer.headers["Cache-Control"] == "no-store"
                return answer.read().decode()

        assert "s · custom" in html.unescape(get("index.html"))
        stamp = get("stamp.json")
        new = record("mlp-vae", "elbo", 7, model_params={"hidden": 64})
        write_run(results, new)
        page = f"s/custom/runs/{row_id({**new['cell'], 'fingerprint': new['fingerprint']})}.html"
        wait_for(lambda: get("stamp.json") != stamp and (out / page).exists(), "a rebuild", proc)
        assert "hidden=64" in html.unescape(get(page))
        assert 'data-live="../../../stamp.json"' in get(page)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_board_page_shows_each_rows_difference_from_its_baseline(results, workdir):
    """As the Markdown's second table: Δ ± half its interval, * and P, row by row."""
    from bench.baselines import BASELINE, DIFF, headline
    from bench.reporters import difference_text

    records = lb.load_records(results, SUITE, SCALE)
    group = records[0].cell["group"]
    board = lb.build(records, SUITE, SCALE, baselines={group: {"objective": "elbo"}})
    site = workdir / "with-baseline"
    write_board(board, site, SiteOptions(media=False))
    text = page_text(site / SUITE / SCALE / "index.html")
    md = markdown(board)
    compared = [r for r in board.table.iter_rows(named=True) if r.get(BASELINE)]
    assert compared and "Against the baseline" in text
    for row in compared:
        assert row[BASELINE] in text
        for col in headline(board.columns):
            if row.get(f"{col.name}_{DIFF}") is not None:
                shown = difference_text(row, col)
                assert shown in text and shown in md


def test_error_bars_are_the_intervals_the_table_prints(board):
    from bench.report.pagedata import value_data

    row = next(r for r in board.table.iter_rows(named=True) if r["seeds"] == 2)
    col = next(c for c in board.columns if c.name == "nll")
    v = value_data(row, col)
    half = lb.interval_half_width(row, "nll")
    assert half is not None and half > (row["nll_std"] or 0)  # t(0.975, 1) = 12.7: wider
    assert v["lo"] == pytest.approx(v["mean"] - half) and v["hi"] == pytest.approx(v["mean"] + half)
