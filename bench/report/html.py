"""Small HTML helpers: escaping, elements, the page shell every page of the site shares.

Pages are plain strings built from these helpers (no template engine: nothing to install, and
every value passes through :func:`esc`). The shell links the site's own stylesheet and script
by relative path, so a site opens from disk and can be moved or published as it is.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any

ASSETS = "assets"
SCRIPT = "report.js"
STYLE = "report.css"


def esc(value: Any) -> str:
    """Text for an element or an attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def text(value: Any) -> str:
    """Text for an element's content only (quotes stay as they are: long JSON stays short)."""
    return html.escape("" if value is None else str(value), quote=False)


def attrs(values: Mapping[str, Any]) -> str:
    """`` name="value"`` pairs; None and False leave an attribute out, True writes it bare."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        # A newline kept as a reference: XML readers of an inline SVG would fold a raw one.
        text = esc(value).replace("\n", "&#10;")
        out.append(f" {name}" if value is True else f' {name}="{text}"')
    return "".join(out)


def tag(name: str, body: str | Iterable[str] = "", **values: Any) -> str:
    """One element; ``body`` is HTML already (escape text with :func:`esc`)."""
    inner = body if isinstance(body, str) else "".join(body)
    return f"<{name}{attrs(values)}>{inner}</{name}>"


def json_script(element_id: str, data: Any) -> str:
    """Data for the page's script, inline so that the page works from ``file://`` (no fetch).
    ``</`` is escaped so that no value can end the script element."""
    text = json.dumps(data, separators=(",", ":"), default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def page(
    title: str,
    body: str,
    root: str,
    crumbs: list[tuple[str, str | None]] | None = None,
    live: bool = False,
) -> str:
    """A whole page. ``root`` is the relative path to the site's top (``""``, ``"../../"``);
    ``crumbs`` are (text, link) pairs for the trail at the top; ``live`` makes the page reload
    when the site is rebuilt (``bench report --serve``)."""
    marks = {"data_root": root or "./", "data_live": f"{root}stamp.json" if live else None}
    trail = ""
    if crumbs:
        parts = [tag("a", esc(t), href=h) if h else tag("span", esc(t)) for t, h in crumbs]
        trail = tag("nav", " › ".join(parts), class_="crumbs", aria_label="Breadcrumb")
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n"
        f'<link rel="stylesheet" href="{root}{ASSETS}/{STYLE}">\n'
        f'<script defer src="{root}{ASSETS}/{SCRIPT}"></script>\n'
        "</head>\n"
        f"<body{attrs(marks)}>"
        '\n<a class="skip" href="#main">Skip to content</a>\n'
        f"<header>{trail}<h1>{esc(title)}</h1></header>\n"
        f'<main id="main">\n{body}\n</main>\n'
        '<div id="tip" role="tooltip" hidden></div>\n'
        "</body>\n</html>\n"
    )


def table(header: list[str], rows: list[list[str]], caption: str = "", **values: Any) -> str:
    """A simple table of HTML cells (already escaped), in a wrapper that scrolls sideways on
    a narrow screen instead of widening the page."""
    head = tag("tr", "".join(tag("th", h, scope="col") for h in header))
    body = "".join(tag("tr", "".join(tag("td", c) for c in r)) for r in rows)
    cap = tag("caption", esc(caption)) if caption else ""
    return tag(
        "div",
        tag("table", cap + tag("thead", head) + tag("tbody", body), **values),
        class_="scroll",
    )


def details(summary: str, body: str, open_: bool = False) -> str:
    return tag("details", tag("summary", esc(summary)) + body, open=open_)


def definition_list(items: list[tuple[str, str]]) -> str:
    """``<dl>`` of (term, HTML) pairs."""
    return tag("dl", "".join(tag("dt", esc(k)) + tag("dd", v) for k, v in items))
