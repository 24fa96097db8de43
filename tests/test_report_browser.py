"""The web report in a real browser: Debian's chromium, driven by Playwright for Python, opens the
report a real `bench run --report` of a small suite wrote, from disk.

Skipped, with the reason, when chromium or Playwright is missing (.ci/run installs both).
Screenshots go to ``$BENCH_TEST_ARTIFACTS`` when set, else to pytest's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.suites import group_toml, suite_toml

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("BENCH_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS_ENV = "BENCH_TEST_ARTIFACTS"
SEEDS = (0, 1)
SUITE = suite_toml(
    "web",
    group_toml(
        "mlp",
        models=["mlp-vae", "mlp-skip-vae"],
        objectives=["elbo", "free-bits"],
        seeds=list(SEEDS),
        model_params={m: {"hidden": 16, "latent_dim": 4} for m in ("mlp-vae", "mlp-skip-vae")},
        budget={"epochs": 3, "train_subset": 200, "valid_subset": 100, "test_subset": 100},
    ),
    group_toml(
        "lstm",
        datasets=["text-synthetic"],
        models=["lstm-vae"],
        dataset_params={"text-synthetic": {"train": 64, "valid": 32, "test": 32}},
        model_params={"lstm-vae": {"emb_dim": 8, "hidden": 16, "latent_dim": 4}},
        budget={"epochs": 2, "batch_size": 32},
        eval={"iw_samples": 4, "batch_size": 32},
    ),
)


def sync_api() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    return pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `bench run --report` of the suite above (two MLP models x two objectives x two
    seeds on the digits, and a text row), in its own process as a user runs it."""
    sync_api()  # skip before training when no browser can look at the result
    root = tmp_path_factory.mktemp("web")
    (root / "web.toml").write_text(SUITE)
    env = {**os.environ, "BENCH_CACHE_DIR": str(root / "cache")}
    env.pop("BENCH_REPORT", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "web.toml", "--report", "--quiet"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report: " in done.stderr
    return root / "results" / "leaderboards" / "site"  # beside the results (docs/report.md)


@pytest.fixture(scope="module")
def browser(site: Path) -> Iterator[Any]:
    with sync_api().sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get(ARTIFACTS_ENV)
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Page:
    """A browser tab that records console errors, page errors and every URL it requests."""

    def __init__(self, browser: Any, width: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.urls: list[str] = []
        self.tab.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tab.on("request", lambda r: self.urls.append(r.url))

    def open(self, path: Path) -> Any:
        self.tab.goto(path.as_uri())
        self.tab.wait_for_load_state("load")
        return self.tab


@pytest.fixture
def wide(browser: Any) -> Iterator[Page]:
    page = Page(browser, 1200)
    yield page
    page.context.close()


@pytest.fixture
def narrow(browser: Any) -> Iterator[Page]:
    page = Page(browser, 400)
    yield page
    page.context.close()


def board_page(site: Path) -> Path:
    return site / "web" / "custom" / "index.html"


def first_table(tab: Any) -> Any:
    return tab.locator("table.board").first


def column_values(table: Any, key: str) -> list[float]:
    index = table.evaluate(
        "(t, key) => t.querySelector(`button[data-key='${key}']`).closest('th').cellIndex", key
    )
    texts = table.evaluate(
        "(t, i) => Array.from(t.tBodies[0].rows, r => r.cells[i].getAttribute('data-v'))", index
    )
    return [float(v) for v in texts]


def test_no_page_has_console_errors_or_asks_the_network(site: Path, wide: Page, shots: Path):
    pages = [site / "index.html", board_page(site), site / "compare.html"]
    pages += sorted((site / "web" / "custom" / "runs").glob("*.html"))
    assert len(pages) >= 8
    for path in pages:
        wide.open(path)
    assert wide.errors == []
    assert all(url.startswith("file://") for url in wide.urls), wide.urls
    wide.open(site / "index.html").screenshot(path=shots / "report-index.png", full_page=True)
    compare = wide.open(site / "compare.html")
    assert "rows matched on their settings' fingerprint" in compare.inner_text("#cmp-out")


def test_clicking_a_column_header_sorts_the_rows(site: Path, wide: Page):
    tab = wide.open(board_page(site))
    table = first_table(tab)
    table.locator("button[data-key='kl']").click()
    ascending = column_values(table, "kl")
    assert ascending == sorted(ascending)
    assert table.locator("th[aria-sort='ascending'] button").get_attribute("data-key") == "kl"
    table.locator("button[data-key='kl']").click()
    assert column_values(table, "kl") == sorted(ascending, reverse=True)
    table.locator("button[data-key='nll']").click()
    assert column_values(table, "nll") == sorted(column_values(table, "nll"))
    assert wide.errors == []


def test_a_filter_hides_rows_and_their_points(site: Path, wide: Page):
    tab = wide.open(board_page(site))
    section = tab.locator("section.dataset").first
    rows = section.locator("table.board tbody tr")
    assert rows.count() == 4
    section.locator("input.filter").fill("skip")
    visible = [r for r in rows.all() if r.is_visible()]
    assert len(visible) == 2 and all("skip" in r.inner_text() for r in visible)
    assert section.locator("figure[data-metric='mi'] a.pt.filtered").count() == 2
    assert "2 of 4 rows" in section.locator(".count").inner_text()
    section.locator("input.filter").fill("")
    assert sum(r.is_visible() for r in rows.all()) == 4
    assert wide.errors == []


def test_the_plot_has_one_point_per_row_and_hovering_names_it(site: Path, wide: Page, shots):
    tab = wide.open(board_page(site))
    section = tab.locator("section.dataset").first
    names = section.locator("table.board tbody tr td:first-child").all_inner_texts()
    for metric in ("mi", "kl"):
        points = section.locator(f"figure[data-metric='{metric}'] a.pt")
        assert points.count() == len(names) == 4
    point = section.locator("figure[data-metric='mi'] a.pt").last  # drawn last: on top
    row = section.locator(f"tr[data-row='{point.get_attribute('data-row')}']")
    label = f"{row.locator('td').nth(0).inner_text()} / {row.locator('td').nth(1).inner_text()}"
    point.hover()
    tip = tab.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    assert text.startswith(label) and "seeds: 2 (0, 1)" in text and "±" in text
    assert "hl" in (row.get_attribute("class") or "")  # the row lights up with its point
    tab.screenshot(path=shots / "report-leaderboard.png", full_page=True)
    assert wide.errors == []


def test_a_rows_link_opens_its_run_page_with_curves_for_every_seed(site: Path, wide: Page, shots):
    tab = wide.open(board_page(site))
    with tab.expect_navigation():
        tab.locator("table.board a.run-link").first.click()
    assert "/runs/" in tab.url
    figures = tab.locator("figure[data-curve]")
    assert figures.count() == 4  # loss, KL, MI, AU
    for figure in figures.all():
        seeds = figure.evaluate(
            "f => [...new Set(Array.from(f.querySelectorAll('g.series'), g => g.dataset.seed))]"
        )
        assert sorted(seeds) == [str(s) for s in SEEDS], figure.get_attribute("data-curve")
    assert tab.locator(".media img").count() == 2  # samples and reconstructions
    assert all(img.evaluate("i => i.naturalWidth > 0") for img in tab.locator(".media img").all())
    tab.screenshot(path=shots / "report-run.png", full_page=True)
    assert wide.errors == []


def test_the_text_rows_page_shows_sentences(site: Path, wide: Page):
    page = next((site / "web" / "custom" / "runs").glob("text-synthetic__*.html"))
    tab = wide.open(page)
    assert tab.locator("ol.sentences li").count() == 6
    assert tab.locator(".media table tbody tr").count() >= 1
    assert wide.errors == []


def test_usable_at_400_px_and_by_keyboard(site: Path, narrow: Page, shots: Path):
    for path in (site / "index.html", board_page(site)):
        tab = narrow.open(path)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 400, path
    tab.screenshot(path=shots / "report-400px.png", full_page=True)

    def tab_to(selector: str, limit: int = 80) -> None:
        for _ in range(limit):
            tab.keyboard.press("Tab")
            if tab.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        pytest.fail(f"Tab never reached {selector}")

    table = first_table(tab)
    tab_to("input.filter")
    tab.keyboard.type("free-bits")
    assert sum(r.is_visible() for r in table.locator("tbody tr").all()) == 2
    tab_to("button.sort[data-key='kl']")
    tab.keyboard.press("Enter")
    assert column_values(table, "kl") == sorted(column_values(table, "kl"))
    tab_to("a.pt")  # a plot point: its tip shows on focus, Enter opens its run page
    assert tab.locator("#tip").is_visible()
    with tab.expect_navigation():
        tab.keyboard.press("Enter")
    assert "/runs/" in tab.url
    assert tab.evaluate("document.documentElement.scrollWidth") <= 400
    assert narrow.errors == []
