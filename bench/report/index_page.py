"""The site's front page (every suite and scale on the site, with its device, date, number of
runs and headline rows) and the compare page (two result sets side by side)."""

from __future__ import annotations

from typing import Any

from bench.report.html import esc, json_script, page, table, tag

HEADLINE_ROWS = 3  # per data set: the best rows by NLL (the board's order)
HEADLINE_COLUMNS = ("nll", "kl", "mi", "au")


def board_href(data: dict[str, Any]) -> str:
    return f"{data['suite']}/{data['scale']}/index.html"


def headline(data: dict[str, Any]) -> str:
    """The first rows of each data set (boards sort by NLL), with the headline columns."""
    cols = [c for c in data["columns"] if c["name"] in HEADLINE_COLUMNS]
    header = ["Data set", "Row"] + [f"{c['title']} {c['arrow']}" for c in cols]
    rows = []
    for ds in data["datasets"]:
        for r in ds["rows"][:HEADLINE_ROWS]:
            link = tag(
                "a", esc(r["label"]), href=f"{data['suite']}/{data['scale']}/runs/{r['id']}.html"
            )
            rows.append(
                [esc(ds["name"]), link] + [esc(r["values"][c["name"]]["text"]) for c in cols]
            )
    return table(header, rows, caption=f"Best {HEADLINE_ROWS} rows by NLL per data set")


def running(data: dict[str, Any]) -> str:
    runs = data.get("running") or []
    if not runs:
        return ""
    items = [
        tag(
            "li",
            tag("a", tag("code", esc(r)), href=f"{data['suite']}/{data['scale']}/runs/{r}.html"),
        )
        for r in runs
    ]
    return tag(
        "details",
        tag("summary", esc(f"{len(runs)} runs in progress")) + tag("ul", items),
        open=True,
    )


def board_card(data: dict[str, Any]) -> str:
    title = tag("h2", tag("a", esc(f"{data['suite']} · {data['scale']}"), href=board_href(data)))
    facts = (
        f"{data['runs']} runs ({data['finished']} finished) on {'; '.join(data['devices']) or '?'}"
        f"; last run ended {data['date'] or '–'}"
    )
    failed = f"; {len(data['failed'])} did not finish" if data["failed"] else ""
    return tag(
        "section",
        title + tag("p", esc(facts + failed)) + running(data) + headline(data),
        class_="card",
    )


def index_page(boards: list[dict[str, Any]], live: bool = False) -> str:
    if not boards:
        body = tag("p", "No leaderboard yet: run `bench run --suite NAME`, then `bench report`.")
    else:
        body = "".join(board_card(b) for b in boards)
    intro = tag(
        "p",
        "Every suite and scale with results, its device, when its last run ended, its number "
        "of runs "
        "and its best rows. " + tag("a", "Compare two result sets", href="compare.html") + ".",
    )
    return page("collapse-bench report", intro + body, "", [("Report", None)], live)


def compare_page(sets: list[dict[str, Any]], note: str, live: bool = False) -> str:
    """Two result sets side by side, drawn by the page's script from ``sets`` (every board
    of the site, and of any other results folder given to ``bench report --compare-with``)."""

    def chooser(side: str, label: str) -> str:
        return tag(
            "label",
            esc(label) + " " + tag("select", "", id=f"cmp-{side}", class_="cmp-select"),
            class_="cmp-choice",
        )

    body = [
        tag("p", esc(note)),
        tag("div", chooser("a", "A") + chooser("b", "B"), class_="tools"),
        tag("div", "", id="cmp-out", aria_live="polite"),
        tag("noscript", "The comparison is drawn by the page's script."),
        json_script("sets", sets),
    ]
    return page(
        "Compare result sets",
        "".join(body),
        "",
        [("Report", "index.html"), ("Compare", None)],
        live,
    )
