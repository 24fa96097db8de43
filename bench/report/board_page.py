"""A leaderboard's page: one section per data set with its notes and settings, a sortable and
filterable table (the Markdown's columns, directions, ⚑ flags and spreads), the NLL–MI and
NLL–KL plots with their Pareto fronts, and active units per row; then the runs that did not
finish."""

from __future__ import annotations

from typing import Any

from bench.formats import duration_text
from bench.plots import pareto_front
from bench.report.html import definition_list, esc, json_script, page, table, tag
from bench.report.svg import PALETTE, SHAPES, Point, marker, scatter

RUNS = "runs"
TRADEOFFS = (("mi", "NLL against MI"), ("kl", "NLL against KL"))


def styles(data: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Colour per model label and marker per objective label, the same on every plot of a
    board, so a row is recognised from one plot to the next."""
    rows = [r for d in data["datasets"] for r in d["rows"]]
    models = sorted({r["model_label"] for r in rows})
    objectives = sorted({r["objective_label"] for r in rows})
    colors = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    return colors, {o: i % SHAPES for i, o in enumerate(objectives)}


def run_href(row: dict[str, Any]) -> str:
    return f"{RUNS}/{row['id']}.html"


def seeds_text(row: dict[str, Any], single: str) -> str:
    seeds = ", ".join(str(s) for s in row["seed_list"])
    return f"{row['seeds']} {single}".strip() if row["seeds"] == 1 else f"{row['seeds']} ({seeds})"


def tip(row: dict[str, Any], columns: list[dict[str, Any]], single: str) -> str:
    """The hover text of a row: its name, its seeds, and each shown value as the table has it
    (the mean over the seeds ± half its 95% interval, as the leaderboard gives it)."""
    lines = [row["label"], f"seeds: {seeds_text(row, single)}"]
    for c in columns:
        v = row["values"][c["name"]]
        if v["mean"] is not None:
            lines.append(f"{c['title']} {c['arrow']}: {v['text']}")
    return "\n".join(lines)


def legend(data: dict[str, Any]) -> str:
    """What the directions, the marks and the columns mean."""
    cols = data["columns"]
    by = {
        d: ", ".join(c["title"] for c in cols if c["direction"] == d) or "none"
        for d in ("min", "max")
    }
    marks = data["marks"]
    items = [
        (
            "Rows",
            "one data set, model, objective and setting each; values are the mean over the "
            "row's seeds ± half the width of its 95% Student-t interval (error bars on the "
            f"plots); {marks['single_seed']} marks a row of one seed, for which no interval "
            "exists.",
        ),
        ("Directions", f"↓ lower is better ({by['min']}); ↑ higher is better ({by['max']})."),
        (
            marks["saturated"],
            "within its metric's margin of the largest value its estimator can "
            "give (MI: log N): saturated, it does not rank rows.",
        ),
    ]
    described = [
        (f"{c['title']} {c['arrow']}", esc(c["description"])) for c in cols if c["description"]
    ]
    body = definition_list([(k, esc(v)) for k, v in items])
    return body + tag("details", tag("summary", "Columns") + definition_list(described))


def header_cells(data: dict[str, Any], shown: list[dict[str, Any]]) -> str:
    def th(title: str, kind: str, key: str, note: str = "") -> str:
        button = tag(
            "button",
            esc(title),
            type="button",
            class_="sort",
            data_key=key,
            data_kind=kind,
            title=note or None,
        )
        return tag("th", button, scope="col", aria_sort="none")

    cells = [
        th("Model", "text", "model"),
        th("Objective", "text", "objective"),
        th("Seeds", "num", "seeds"),
    ]
    cells += [th(t, "text", n) for n, t in data["before"]]
    cells += [th(f"{c['title']} {c['arrow']}", "num", c["name"], c["description"]) for c in shown]
    cells += [th(t, "text", n) for n, t in data["after"]]
    return tag("tr", cells)


def body_row(data: dict[str, Any], row: dict[str, Any], shown: list[dict[str, Any]]) -> str:
    single = data["marks"]["single_seed"]
    link = tag("a", esc(row["model_label"]), href=run_href(row), class_="run-link")
    cells = [
        tag("td", link, data_v=row["model_label"]),
        tag("td", esc(row["objective_label"]), data_v=row["objective_label"]),
        tag("td", esc(seeds_text(row, single)), data_v=row["seeds"]),
    ]
    cells += [
        tag("td", esc(row["before"].get(n, "")), data_v=row["before"].get(n, ""))
        for n, _ in data["before"]
    ]
    for c in shown:
        v = row["values"][c["name"]]
        cls = "num saturated" if v["saturated"] else "num"
        cells.append(
            tag(
                "td",
                esc(v["text"]),
                class_=cls,
                data_v="" if v["mean"] is None else repr(v["mean"]),
            )
        )
    cells += [
        tag("td", esc(row["after"].get(n, "")), data_v=row["after"].get(n, ""))
        for n, _ in data["after"]
    ]
    return tag("tr", cells, data_row=row["id"], data_seeds=row["seeds"])


def rows_table(data: dict[str, Any], ds: dict[str, Any], table_id: str) -> str:
    shown = [c for c in data["columns"] if c["name"] in ds["columns"]]
    body = "".join(body_row(data, r, shown) for r in ds["rows"])
    filt = tag(
        "label",
        "Filter rows "
        + tag(
            "input",
            type="search",
            class_="filter",
            data_table=table_id,
            placeholder="model, objective, …",
        ),
        class_="filter-label",
    )
    count = tag(
        "span",
        f"{len(ds['rows'])} rows",
        class_="count",
        data_count_for=table_id,
        aria_live="polite",
    )
    caption = tag(
        "caption", esc(f"{ds['name']}: sorted by NLL; click a column's title to sort by it")
    )
    tbl = tag(
        "table",
        caption + tag("thead", header_cells(data, shown)) + tag("tbody", body),
        id=table_id,
        class_="board sortable",
    )
    return tag("div", filt + count, class_="tools") + tag("div", tbl, class_="scroll")


def tradeoff_plot(data: dict[str, Any], ds: dict[str, Any], metric: str, title: str) -> str:
    """NLL (y) against ``metric`` (x) for every row that has both, with the front."""
    cols = {c["name"]: c for c in data["columns"]}
    if "nll" not in cols or metric not in cols:
        return ""
    colors, shapes = styles(data)
    shown = [c for c in data["columns"] if c["name"] in ds["columns"]]
    single = data["marks"]["single_seed"]
    points, ceilings = [], set()
    for r in ds["rows"]:
        x, y = r["values"][metric], r["values"]["nll"]
        if x["mean"] is None or y["mean"] is None:
            continue
        if x["ceiling"] is not None:
            ceilings.add(x["ceiling"])
        points.append(
            Point(
                x["mean"],
                y["mean"],
                (x["lo"], x["hi"]),
                (y["lo"], y["hi"]),
                r["id"],
                tip(r, shown, single),
                run_href(r),
                colors[r["model_label"]],
                shapes[r["objective_label"]],
            )
        )
    if not points:
        return ""
    front = pareto_front([(p.x, p.y) for p in points], cols[metric]["direction"] == "max")
    x_label = f"{cols[metric]['title']} {cols[metric]['arrow']} (test)"
    y_label = f"{cols['nll']['title']} {cols['nll']['arrow']} (test)"
    chart = scatter(points, x_label, y_label, f"{ds['name']}: {title}", front, sorted(ceilings))
    caption = (
        f"{title} ({len(points)} rows); ringed and joined by a dashed line: the Pareto front; "
        "dotted: the estimator's ceiling"
    )
    return tag("figure", chart + tag("figcaption", esc(caption)), class_="plot", data_metric=metric)


def plot_legend(data: dict[str, Any], ds: dict[str, Any]) -> str:
    colors, shapes = styles(data)
    models = dict.fromkeys(r["model_label"] for r in ds["rows"])
    objectives = dict.fromkeys(r["objective_label"] for r in ds["rows"])
    items = [tag("li", _swatch(0, colors[m]) + esc(m)) for m in models]
    items += [tag("li", _swatch(shapes[o], "#555") + esc(o)) for o in objectives]
    return tag(
        "ul",
        items,
        class_="legend",
        aria_label="Plot legend: colour is the model, marker the objective",
    )


def _swatch(shape: int, color: str) -> str:
    inner = marker(shape, 7, 7, color, 4.5)
    return f'<svg class="swatch" viewBox="0 0 14 14" aria-hidden="true">{inner}</svg>'


def au_bars(data: dict[str, Any], ds: dict[str, Any]) -> str:
    """Active units per row, as a bar of the fraction of D."""
    items = []
    for r in ds["rows"]:
        au = r["values"].get("au")
        if not au or au["mean"] is None:
            continue
        share = au["mean"] / au["of"] if au["of"] else None
        width = 0.0 if share is None else max(0.0, min(1.0, share)) * 100
        bar = tag(
            "span",
            tag("span", "", class_="fill", style=f"width:{width:.1f}%"),
            class_="bar",
            aria_hidden="true",
        )
        items.append(
            tag(
                "li",
                tag("span", esc(r["label"]), class_="name")
                + bar
                + tag("span", esc(au["text"]), class_="value"),
                data_row=r["id"],
            )
        )
    if not items:
        return ""
    return tag(
        "section",
        tag("h3", "Active units per row") + tag("ul", items, class_="au"),
        class_="au-rows",
    )


def differences(data: dict[str, Any], ds: dict[str, Any]) -> str:
    """The data set's rows against their baselines, as the Markdown's second table."""
    compared = [r for r in ds["rows"] if r["baseline"]]
    if not compared or not ds["diff_columns"]:
        return ""
    cols = {c["name"]: c for c in data["columns"]}
    header = ["Model", "Objective", "Baseline"]
    header += [f"Δ {cols[n]['title']} {cols[n]['arrow']}" for n in ds["diff_columns"]]
    rows = [
        [esc(r["model_label"]), esc(r["objective_label"]), esc(r["baseline"])]
        + [esc(r["diffs"].get(n, "–")) for n in ds["diff_columns"]]
        for r in compared
    ]
    return tag(
        "section",
        tag("h3", "Against the baseline")
        + table([esc(h) for h in header], rows)
        + tag("p", esc(data["difference_legend"]), class_="note"),
        class_="differences",
    )


def dataset_section(data: dict[str, Any], ds: dict[str, Any], index: int) -> str:
    table_id = f"rows-{index}"
    notes = [tag("li", "Data: " + esc(n)) for n in ds["notes"]] + [
        tag("li", esc(s)) for s in ds["settings"]
    ]
    plots = "".join(tradeoff_plot(data, ds, m, t) for m, t in TRADEOFFS)
    parts = [
        tag("h2", esc(ds["name"]), id=f"ds-{index}"),
        tag("ul", notes, class_="notes") if notes else "",
        rows_table(data, ds, table_id),
        differences(data, ds),
        (tag("div", plots, class_="plots") + plot_legend(data, ds)) if plots else "",
        au_bars(data, ds),
    ]
    return tag("section", parts, class_="dataset", aria_labelledby=f"ds-{index}")


def failed_section(data: dict[str, Any]) -> str:
    if not data["failed"]:
        return ""
    items = [
        tag(
            "li",
            tag("a", tag("code", esc(f["run_id"])), href=f"{RUNS}/{f['run_id']}.html")
            + esc(f": {f['status']}: {f['reason']}"),
        )
        for f in data["failed"]
    ]
    return tag("section", tag("h2", "Runs that did not finish") + tag("ul", items), class_="failed")


def board_page(data: dict[str, Any], live: bool = False) -> str:
    """The whole page; it sits at ``<suite>/<scale>/index.html`` of the site."""
    meta = definition_list(
        [
            ("Device", esc("; ".join(data["devices"]))),
            ("Last run ended", esc(data["date"] or "–")),
            (
                "Runs",
                esc(
                    f"{data['runs']} ({data['finished']} finished); "
                    f"run wall time {duration_text(data['wall_time_s'])}"
                ),
            ),
        ]
    )
    jump = tag(
        "nav",
        tag(
            "ul",
            [
                tag("li", tag("a", esc(d["name"]), href=f"#ds-{i}"))
                for i, d in enumerate(data["datasets"])
            ],
        ),
        aria_label="Data sets",
        class_="jump",
    )
    sections = "".join(dataset_section(data, d, i) for i, d in enumerate(data["datasets"]))
    body = (
        tag("section", meta + legend(data), class_="meta") + jump + sections + failed_section(data)
    )
    body += json_script("board", {"key": data["key"]})
    title = f"Leaderboard: {data['suite']} ({data['scale']})"
    crumbs = [("Report", "../../index.html"), (data["key"], None)]
    return page(title, body, "../../", crumbs, live)
