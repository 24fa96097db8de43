"""mkdocs hook: fills docs/registry.md with the items collapse-bench itself registers and the
parameters each declares, read from the registries at build time so the page cannot drift."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- registered items -->"
KINDS = ("datasets", "models", "objectives", "metrics", "suites", "reporters")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _search(p: Any) -> str:
    if p.choices:
        return ", ".join(repr(c) for c in p.choices)
    if p.low is None or p.high is None:
        return "not tuned"
    return f"{p.low:g} to {p.high:g}" + (" (log)" if p.log else "")


def _valid(p: Any) -> str:
    if p.minimum is None and p.maximum is None:
        return "any"
    if p.maximum is None:
        return f"≥ {p.minimum:g}"
    if p.minimum is None:
        return f"≤ {p.maximum:g}"
    return f"{p.minimum:g} to {p.maximum:g}"


def render() -> str:
    from bench import plugins

    regs = plugins.registries()
    out: list[str] = []
    for kind in KINDS:
        items = [i for i in getattr(regs, kind) if i.distribution.startswith("collapse-bench")]
        out += [
            f"## {kind.capitalize()}",
            "",
            "| name | description | plugin |",
            "| --- | --- | --- |",
        ]
        out += [f"| `{i.name}` | {_cell(i.description)} | `{i.plugin}` |" for i in items]
        out.append("")
        for item in items:
            params = getattr(item, "params", None)
            if not params:
                continue
            out += [
                f"### `{item.name}`",
                "",
                "| parameter | default | search range | valid values | help |",
                "| --- | --- | --- | --- | --- |",
            ]
            out += [
                f"| `{name}` | `{p.default!r}` | {_search(p)} | {_valid(p)} | {_cell(p.help)} |"
                for name, p in params.items()
            ]
            out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
