"""The site's charts as inline SVG, drawn here so that a page needs no plotting library: a
scatter (NLL against MI or KL, with error bars and the Pareto front) and per-epoch curves.

Every point carries ``data-row`` (the table row it stands for) and ``data-tip`` (the text the
page's script shows on hover and on keyboard focus); a scatter point is a link to its row's run
page, so a keyboard reaches it with Tab and opens it with Enter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.report.html import attrs, esc

# matplotlib's tab10: the same colours the PNG plots use for models.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
SHAPES = 6
WIDTH, HEIGHT = 560, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48


@dataclass(frozen=True)
class Point:
    """One row in a scatter: its position, error bars, and how it is shown."""

    x: float
    y: float
    x_err: tuple[float, float] | None
    y_err: tuple[float, float] | None
    row: str
    tip: str
    href: str | None
    color: str
    shape: int


@dataclass(frozen=True)
class Series:
    """One line of a curve chart: one seed's training or validation values per epoch."""

    name: str
    seed: int
    kind: str  # "train" or "val"
    color: str
    points: list[tuple[float, float]]


def nice_ticks(lo: float, hi: float, count: int = 5, whole: bool = False) -> list[float]:
    """About ``count`` round values covering [lo, hi] (whole numbers only when ``whole``)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_text(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2e}"


class Frame:
    """Maps data to the SVG's pixels and draws the axes."""

    def __init__(
        self, x_range: tuple[float, float], y_range: tuple[float, float], whole_x: bool = False
    ) -> None:
        self.whole_x = whole_x
        self.x0, self.x1 = _widen(*x_range)
        self.y0, self.y1 = _widen(*y_range)

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)

    def axes(self, x_label: str, y_label: str) -> str:
        out = ['<g class="axes" aria-hidden="true">']
        bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{bottom - TOP}"/>')
        for t in nice_ticks(self.x0, self.x1, whole=self.whole_x):
            x = self.px(t)
            out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}"/>')
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{tick_text(t)}</text>'
            )
        for t in nice_ticks(self.y0, self.y1):
            y = self.py(t)
            out.append(f'<line class="grid" x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_text(t)}</text>'
            )
        out.append(
            f'<text class="label" x="{(LEFT + right) / 2:.0f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{esc(x_label)}</text>'
        )
        out.append(
            f'<text class="label" transform="translate(14 {(TOP + bottom) / 2:.0f}) rotate(-90)" '
            f'text-anchor="middle">{esc(y_label)}</text>'
        )
        out.append("</g>")
        return "".join(out)


def _widen(lo: float, hi: float) -> tuple[float, float]:
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def svg(body: str, title: str, **values: object) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="group"{attrs({"aria_label": title, **values})}'
        f' xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def marker(shape: int, x: float, y: float, color: str, r: float = 5.5) -> str:
    """A filled marker: circle, square, diamond, triangles up and down, or a star."""
    fill = f'fill="{color}"'
    kind = shape % SHAPES
    if kind == 0:
        return f'<circle class="mk" cx="{x:.1f}" cy="{y:.1f}" r="{r}" {fill}/>'
    if kind == 1:
        box = f'x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}"'
        return f'<rect class="mk" {box} {fill}/>'
    corners = {
        2: [(0, -1.3), (1.3, 0), (0, 1.3), (-1.3, 0)],
        3: [(0, -1.3), (1.2, 1), (-1.2, 1)],
        4: [(0, 1.3), (1.2, -1), (-1.2, -1)],
        5: [
            (math.cos(a) * s, math.sin(a) * s)
            for i in range(10)
            for a, s in [(-math.pi / 2 + i * math.pi / 5, 1.45 if i % 2 == 0 else 0.6)]
        ],
    }[kind]
    pts = " ".join(f"{x + dx * r:.1f},{y + dy * r:.1f}" for dx, dy in corners)
    return f'<polygon class="mk" points="{pts}" {fill}/>'


def _error_bars(frame: Frame, p: Point) -> str:
    out = []
    x, y = frame.px(p.x), frame.py(p.y)
    if p.y_err and p.y_err[1] > p.y_err[0]:
        a, b = frame.py(p.y_err[0]), frame.py(p.y_err[1])
        out.append(
            f'<line class="err" x1="{x:.1f}" x2="{x:.1f}" y1="{a:.1f}" y2="{b:.1f}" '
            f'stroke="{p.color}"/>'
        )
    if p.x_err and p.x_err[1] > p.x_err[0]:
        a, b = frame.px(p.x_err[0]), frame.px(p.x_err[1])
        out.append(
            f'<line class="err" x1="{a:.1f}" x2="{b:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{p.color}"/>'
        )
    return "".join(out)


def scatter(
    points: list[Point],
    x_label: str,
    y_label: str,
    title: str,
    front: list[tuple[float, float]],
    ceilings: list[float],
) -> str:
    """Rows as points with error bars, the Pareto front as a dashed line through ringed
    points, and each
    estimator ceiling (MI: log N) as a dotted vertical line; the x axis starts at 0."""
    xs = [v for p in points for v in (p.x, *(p.x_err or ()))] + ceilings
    ys = [v for p in points for v in (p.y, *(p.y_err or ()))]
    frame = Frame((min(0.0, *xs), max(xs) * 1.05 or 1.0), (min(ys), max(ys)))
    pad = (frame.y1 - frame.y0) * 0.06
    frame.y0, frame.y1 = frame.y0 - pad, frame.y1 + pad
    body = [frame.axes(x_label, y_label)]
    for c in ceilings:
        x = frame.px(c)
        body.append(
            f'<line class="ceiling" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}">'
            f"<title>estimator ceiling {c:g}</title></line>"
        )
    if len(front) > 1:
        d = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in front)
        body.append(f'<polyline class="front" points="{d}"><title>Pareto front</title></polyline>')
    on_front = set(front)
    for p in points:
        x, y = frame.px(p.x), frame.py(p.y)
        inner = _error_bars(frame, p) + marker(p.shape, x, y, p.color)
        best = (p.x, p.y) in on_front
        if best:  # a ring: the front of a single point draws no line
            inner = f'<circle class="ring" cx="{x:.1f}" cy="{y:.1f}" r="9"/>' + inner
        tip = p.tip + ("\non the Pareto front" if best else "")
        link = {"href": p.href, "class_": "pt", "data_row": p.row, "data_tip": tip}
        link["data_front"] = "1" if best else None
        body.append(f"<a{attrs({**link, 'aria_label': tip.replace(chr(10), '; ')})}>{inner}</a>")
    return svg("".join(body), title, class_="chart scatter")


def line_chart(series: list[Series], title: str, y_label: str, x_label: str = "epoch") -> str:
    """One line per series (validation solid, training dashed), a dot per epoch with its
    value as the hover text."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if not xs:
        return ""
    frame = Frame((min(xs), max(xs)), (min(ys), max(ys)), whole_x=True)
    pad = (frame.y1 - frame.y0) * 0.06
    frame.y0, frame.y1 = frame.y0 - pad, frame.y1 + pad
    body = [frame.axes(x_label, y_label)]
    for s in series:
        d = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in s.points)
        dots = "".join(
            f'<circle class="dot" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="3" '
            f'fill="{s.color}"{attrs({"data_tip": f"{s.name}, epoch {x:g}: {y:.4g}"})}/>'
            for x, y in s.points
        )
        body.append(
            f'<g class="series {s.kind}"{attrs({"data_seed": s.seed, "data_kind": s.kind})}>'
            f'<polyline points="{d}" stroke="{s.color}"/>{dots}</g>'
        )
    return svg("".join(body), title, class_="chart curves")
