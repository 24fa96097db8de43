"""A row's run page: per-epoch training and validation curves of the loss, KL, MI and AU for each
seed; the settings and their fingerprint; what the model draws; each seed's record (metrics with
their estimator settings, the method's state, any error). A run that did not finish gets the
same page, with its error and the tail of its ``error.log``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.report.html import definition_list, details, esc, page, table, tag, text
from bench.report.media import Media
from bench.report.pagedata import number
from bench.report.svg import PALETTE, Series, line_chart

if TYPE_CHECKING:
    from bench.records import RunRecord

# (title, unit, [(epoch log field, "train" or "val")]): the curves of a run page.
CURVES = (
    ("Loss (−ELBO)", "nats", (("train_loss", "train"), ("val_neg_elbo", "val"))),
    ("KL", "nats", (("train_kl", "train"), ("val_kl", "val"))),
    ("MI", "nats", (("val_mi", "val"),)),
    ("AU", "active units", (("val_au", "val"),)),
)
LOG_FIELDS = (
    "epoch",
    "beta",
    "lr",
    "train_loss",
    "train_kl",
    "val_neg_elbo",
    "val_kl",
    "val_mi",
    "val_au",
)
RECORD_FACTS = (
    "run_id",
    "status",
    "reason",
    "stop_reason",
    "epochs_trained",
    "best_epoch",
    "steps",
    "train_examples_per_s",
    "train_time_s",
    "eval_time_s",
    "wall_time_s",
    "device_name",
    "started_at",
    "finished_at",
    "git_commit",
)
ERROR_TAIL = 40


def seed_of(record: RunRecord) -> int:
    return int(record.cell.get("seed", 0))


def curve_series(records: list[RunRecord], fields: tuple[tuple[str, str], ...]) -> list[Series]:
    out = []
    for i, record in enumerate(records):
        log = record.epoch_log
        for name, kind in fields:
            # Epochs counted from 1, as the logs, tables and plots count them (bench.formats).
            points = [(float(e["epoch"]), v) for e in log if (v := number(e.get(name))) is not None]
            if points:
                seed = seed_of(record)
                out.append(
                    Series(f"seed {seed} {name}", seed, kind, PALETTE[i % len(PALETTE)], points)
                )
    return out


def curves_section(records: list[RunRecord]) -> str:
    figures = []
    for title, unit, fields in CURVES:
        series = curve_series(records, fields)
        if not series:
            continue
        kinds = sorted({s.kind for s in series})
        note = (
            "solid: validation; dashed: training"
            if len(kinds) > 1
            else ("validation" if kinds == ["val"] else "training")
        )
        chart = line_chart(series, title, f"{title} ({unit})")
        figures.append(
            tag(
                "figure",
                chart + tag("figcaption", esc(f"{title} per epoch, {note}")),
                class_="plot",
                data_curve=title,
            )
        )
    if not figures:
        return tag("section", tag("h2", "Curves") + tag("p", "No per-epoch log was found."))
    seeds = [
        tag(
            "li",
            f'<span class="swatch line" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
            + esc(f"seed {seed_of(r)}"),
        )
        for i, r in enumerate(records)
    ]
    legend = tag("ul", seeds, class_="legend", aria_label="Colour is the seed")
    return tag(
        "section",
        tag("h2", "Curves") + legend + tag("div", figures, class_="plots") + log_tables(records),
        class_="curves",
    )


def log_tables(records: list[RunRecord]) -> str:
    """The epoch logs as tables (what the curves draw, for keyboards and screen readers)."""
    parts = []
    for r in records:
        rows = [[esc(_fmt(e.get(f))) for f in LOG_FIELDS] for e in r.epoch_log]
        parts.append(table(list(LOG_FIELDS), rows, caption=f"seed {seed_of(r)}: {r.run_id}"))
    return details("Epoch logs", "".join(parts))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.5g}"
    return "" if value is None else str(value)


def settings_section(record: RunRecord) -> str:
    """The resolved settings, one line per part, and the fingerprint that names them."""
    items = []
    for part, values in record.resolved.items():
        shown = ", ".join(
            f"{k}={json.dumps(v, default=str)}" for k, v in sorted((values or {}).items())
        )
        items.append((part, esc(shown or "(defaults)")))
    body = tag(
        "p",
        "Fingerprint "
        + tag("code", esc(record.fingerprint))
        + ": the hash of these settings; runs with the same fingerprint are seeds of one row.",
    )
    return tag("section", tag("h2", "Settings") + body + definition_list(items), class_="settings")


def media_section(media: Media, media_href: str) -> str:
    parts = []
    for caption, name in media.images:
        img = tag("img", "", src=f"{media_href}{name}", alt=caption, loading="lazy")
        parts.append(tag("figure", img + tag("figcaption", esc(caption)), class_="grid"))
    if media.samples:
        parts.append(tag("h3", "Sentences decoded greedily from z drawn from the prior"))
        parts.append(
            tag(
                "ol",
                [tag("li", esc(s) or "<i>(empty)</i>") for s in media.samples],
                class_="sentences",
            )
        )
    if media.reconstructions:
        rows = [[esc(a), esc(b)] for a, b in media.reconstructions]
        parts.append(
            table(
                ["test sentence", "decoded from its posterior mean"],
                rows,
                caption="Reconstructions",
            )
        )
    if media.note:
        parts.append(tag("p", esc(media.note), class_="note"))
    if not parts:
        return ""
    title = "What the model draws" + (
        f" (seed {media.seed}, best checkpoint)" if media.seed is not None else ""
    )
    return tag("section", tag("h2", esc(title)) + "".join(parts), class_="media")


def metrics_table(record: RunRecord) -> str:
    rows = []
    for name, m in sorted(record.metrics.items()):
        value = m.value if not isinstance(m.value, list) else f"[{len(m.value)} values]"
        err = "" if not m.error else f"{m.error.get('type')}: {m.error.get('message')}"
        rows.append(
            [
                esc(name),
                esc(_fmt(value)),
                esc(", ".join(f"{k}={v}" for k, v in sorted(m.settings.items()))),
                esc(err),
            ]
        )
    return table(["metric", "value (test)", "estimator settings", "error"], rows)


def record_section(record: RunRecord) -> str:
    json_form = record.to_json()
    facts = [
        (k, esc(_fmt(json_form.get(k)))) for k in RECORD_FACTS if json_form.get(k) not in (None, "")
    ]
    parts = [
        tag("h3", esc(f"seed {seed_of(record)}: {record.run_id}"), id=f"seed-{seed_of(record)}"),
        definition_list(facts),
    ]
    if record.method_state:
        state = [
            (k, esc(json.dumps(v, default=str))) for k, v in sorted(record.method_state.items())
        ]
        parts.append(tag("h4", "Method state") + definition_list(state))
    parts.append(error_block(record))
    if record.metrics:
        parts.append(metrics_table(record))
    parts.append(
        details(
            "The record (record.json)",
            tag("pre", text(json.dumps(json_form, indent=2, sort_keys=True, default=str))),
        )
    )
    return tag("article", parts, class_="record")


def error_block(record: RunRecord) -> str:
    if record.error is None and record.finished:
        return ""
    lines = []
    if record.error is not None:
        e = record.error
        where = f" (plugin {e.plugin!r}, {e.distribution})" if e.plugin else ""
        lines.append(tag("p", esc(f"{e.type}: {e.message}{where}"), class_="error"))
    elif record.reason:
        lines.append(tag("p", esc(f"{record.status}: {record.reason}"), class_="error"))
    log = error_log(record)
    if log:
        name = record.error.log if record.error else "error.log"
        lines.append(details(f"The end of {name}", tag("pre", text(log))))
    return tag("div", lines, class_="errors", role="alert") if lines else ""


def error_log(record: RunRecord) -> str:
    if record.run_dir is None:
        return ""
    path = record.run_dir / (record.error.log if record.error else "error.log")
    if not path.is_file() or path.resolve().parent != record.run_dir.resolve():
        return ""  # only a file in the run folder itself is shown
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-ERROR_TAIL:])


def run_page(
    board: dict[str, Any],
    title: str,
    summary: list[tuple[str, str]],
    records: list[RunRecord],
    media: Media | None,
    live: bool = False,
) -> str:
    """A run page at ``<suite>/<scale>/runs/<id>.html``: ``records`` are the row's seeds (or
    the one run that did not finish), ``summary`` the row's values as (term, HTML) pairs."""
    parts = [tag("section", definition_list(summary), class_="meta")]
    parts.append(curves_section(records))
    if media is not None:
        parts.append(media_section(media, "../media/"))
    if records:
        parts.append(settings_section(records[0]))
    parts.append(
        tag(
            "section",
            tag("h2", "Records") + "".join(record_section(r) for r in records),
            class_="records",
        )
    )
    crumbs = [("Report", "../../../index.html"), (board["key"], "../index.html"), (title, None)]
    return page(title, "".join(parts), "../../../", crumbs, live)


def in_progress_page(key: str, run_dir: Path, live: bool) -> str:
    """A page for a run folder without a record yet (a run in progress): its curves so far."""
    from bench.records import EPOCH_LOG, RECORD_FILE, RunRecord, read_epoch_log

    seed = run_dir.name.rsplit("__s", 1)[-1].split("__", 1)[0]
    cell = {"seed": int(seed) if seed.isdigit() else 0}
    record = RunRecord(run_dir.name, "running", cell, source=run_dir / RECORD_FILE)
    log = read_epoch_log(run_dir / EPOCH_LOG)
    summary = [("Run", esc(run_dir.name)), ("Epochs logged", esc(len(log)))]
    summary.append(("Status", "in progress: no record yet"))
    body = tag("section", definition_list(summary), class_="meta") + curves_section([record])
    title = f"{run_dir.name} (in progress)"
    crumbs = [("Report", "../../../index.html"), (key, "../index.html"), (title, None)]
    return page(title, body, "../../../", crumbs, live)
