"""Writes the site: a board's pages (its leaderboard page, a run page per row and per run that did
not finish, the media), then the front page and the compare page from every board on the site.

The site's layout::

    index.html                      every suite and scale, headline rows
    compare.html                    two result sets side by side
    assets/report.css, report.js    the site's only style and script (no network at view time)
    data/<suite>.<scale>.json       each board's data (what the front and compare pages read)
    data/compare/<set>.<suite>.<scale>.json   boards of other results folders (--compare-with)
    <suite>/<scale>/index.html      the leaderboard page
    <suite>/<scale>/runs/<row>.html a row's run page (<run id>.html: a run that did not finish)
    <suite>/<scale>/media/          sample and reconstruction grids
    stamp.json                      changes at every build; served pages reload when it does
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.files import atomic_write_text
from bench.report.board_page import RUNS, board_page
from bench.report.html import ASSETS, SCRIPT, STYLE, esc
from bench.report.index_page import compare_page, index_page
from bench.report.media import DataCache, Media, run_media
from bench.report.pagedata import board_data, slug
from bench.report.run_page import in_progress_page, run_page

if TYPE_CHECKING:
    from bench.leaderboard import Leaderboard
    from bench.records import RunRecord

DATA = "data"
COMPARE_SETS = "compare"
MEDIA = "media"
STAMP = "stamp.json"
COMPARE_NOTE = (
    "Rows are matched on their settings' fingerprint (data set, model, objective and every "
    "resolved parameter, budget and eval setting): a row of A and a row of B are compared only "
    "when they ran the same settings. Δ is B − A; ▲ marks a difference larger than the two "
    "rows' spreads over seeds together (√(sA² + sB²)), a hint, not a test."
)


@dataclass
class SiteOptions:
    """How a site is built: draw media from checkpoints, make pages reload when served, and
    the runs in progress per board key (``suite/scale`` -> run folders)."""

    media: bool = True
    live: bool = False
    running: dict[str, list[Path]] = field(default_factory=dict)
    data_cache: DataCache = field(default_factory=dict)


def write_assets(site: Path) -> None:
    """The stylesheet and the script, from this package (nothing is fetched at view time)."""
    folder = site / ASSETS
    folder.mkdir(parents=True, exist_ok=True)
    for name in (SCRIPT, STYLE):
        text = resources.files("bench.report").joinpath(ASSETS, name).read_text(encoding="utf-8")
        target = folder / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            atomic_write_text(target, text)


def write_board(board: Leaderboard, site: Path, options: SiteOptions | None = None) -> list[str]:
    """Every page of ``board`` and the front and compare pages; returns the front page's and
    the leaderboard page's paths."""
    options = options or SiteOptions()
    write_assets(site)
    data = board_data(board)
    running = options.running.get(data["key"], [])
    data["running"] = [p.name for p in running]
    folder = site / slug(board.suite) / slug(board.scale)
    written = write_run_pages(board, data, folder, options)
    written |= {p.name for p in (_in_progress(data["key"], folder, running, options.live))}
    _remove_stale(folder / RUNS, written)
    atomic_write_text(folder / "index.html", board_page(data, options.live))
    write_data(site / DATA / f"{data['slug']}.json", data)
    write_front(site, options.live)
    return [str(site / "index.html"), str(folder / "index.html")]


def write_run_pages(
    board: Leaderboard, data: dict[str, Any], folder: Path, options: SiteOptions
) -> set[str]:
    by_id = {r.run_id: r for r in board.records}
    written: set[str] = set()
    for ds in data["datasets"]:
        for row in ds["rows"]:
            records = [by_id[i] for i in row["runs"] if i in by_id]
            media = _media(records, folder / MEDIA, row["id"], options)
            text = run_page(
                data, row["label"], row_summary(data, ds, row), records, media, options.live
            )
            written.add(_write(folder / RUNS / f"{row['id']}.html", text))
    for failed in data["failed"]:
        record = by_id.get(failed["run_id"])
        if record is None:
            continue
        summary = [
            ("Status", esc(f"{record.status}: {record.reason}")),
            ("Data set", esc(record.cell.get("dataset"))),
        ]
        text = run_page(
            data, f"{record.run_id} ({record.status})", summary, [record], None, options.live
        )
        written.add(_write(folder / RUNS / f"{slug(record.run_id)}.html", text))
    return written


def _media(
    records: list[RunRecord], media_dir: Path, stem: str, options: SiteOptions
) -> Media | None:
    if not options.media or not records:
        return None
    return run_media(records[0], media_dir, stem, options.data_cache)


def _in_progress(key: str, folder: Path, running: list[Path], live: bool) -> list[Path]:
    out = []
    for run_dir in running:
        target = folder / RUNS / f"{slug(run_dir.name)}.html"
        _write(target, in_progress_page(key, run_dir, live))
        out.append(target)
    return out


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return path.name


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Run pages an earlier build wrote for rows or runs the board no longer has."""
    if folder.is_dir():
        for page in folder.glob("*.html"):
            if page.name not in keep:
                page.unlink()


def row_summary(
    data: dict[str, Any], ds: dict[str, Any], row: dict[str, Any]
) -> list[tuple[str, str]]:
    """A run page's head: the row's names, seeds and values as its leaderboard shows them."""
    items = [
        ("Leaderboard", f'<a href="../index.html">{esc(data["key"])}</a>'),
        ("Data set", esc(ds["name"])),
        ("Model", esc(row["model_label"])),
        ("Objective", esc(row["objective_label"])),
        ("Seeds", esc(", ".join(str(s) for s in row["seed_list"]))),
    ]
    for c in data["columns"]:
        v = row["values"][c["name"]]
        if c["name"] in ds["columns"] and v["mean"] is not None:
            items.append((f"{c['title']} {c['arrow']}", esc(v["text"])))
    return items


def write_data(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, separators=(",", ":"), default=str))


def read_sets(site: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The boards on the site, and those of other results folders (compare only)."""

    def load(paths: list[Path]) -> list[dict[str, Any]]:
        out = []
        for p in sorted(paths):
            try:
                out.append(json.loads(p.read_text(encoding="utf-8")))
            except ValueError:
                continue  # half a file from a killed build: the next build writes it again
        return out

    return load(list((site / DATA).glob("*.json"))), load(
        list((site / DATA / COMPARE_SETS).glob("*.json"))
    )


def write_front(site: Path, live: bool = False) -> None:
    """The front page, the compare page and the stamp served pages watch."""
    boards, others = read_sets(site)
    atomic_write_text(site / "index.html", index_page(boards, live))
    sets = [dict(compact(b), set=b.get("set", "this site")) for b in boards]
    sets += [dict(compact(b), set=b.get("set", "other")) for b in others]
    atomic_write_text(site / "compare.html", compare_page(sets, COMPARE_NOTE, live))
    atomic_write_text(site / STAMP, json.dumps({"built": time.time()}))


def compact(data: dict[str, Any]) -> dict[str, Any]:
    """What the compare page needs of a board: its columns and each row's values."""
    keep = ("text", "mean", "std")
    rows = [
        {k: r[k] for k in ("dataset", "model", "objective", "fingerprint", "label", "seeds")}
        | {
            "values": {
                n: {k: v[k] for k in keep} for n, v in r["values"].items() if v["mean"] is not None
            }
        }
        for ds in data["datasets"]
        for r in ds["rows"]
    ]
    return {"key": data["key"], "columns": data["columns"], "rows": rows}


def write_compare_set(site: Path, label: str, board: Leaderboard) -> None:
    data = board_data(board)
    data["set"] = label
    write_data(site / DATA / COMPARE_SETS / f"{slug(label)}.{data['slug']}.json", data)


def clear_compare_sets(site: Path) -> None:
    shutil.rmtree(site / DATA / COMPARE_SETS, ignore_errors=True)
