"""The paper scale as it expands before any training: static MNIST, five seeds in every group,
the reference variants and protocols (docs/paper.md)."""

from __future__ import annotations

from collections import defaultdict

from bench import plugins
from bench.runner import select_cells, validate_cells

PAPER_SEEDS = {0, 1, 2, 3, 4}  # five: enough for intervals (docs/comparing.md)


def _rows(scale: str) -> dict[tuple[str, str, str, str], set[int]]:
    suite = plugins.registries().suites.get("collapse")
    _, cells = select_cells(suite, scale)
    validate_cells(cells)
    rows: dict[tuple[str, str, str, str], set[int]] = defaultdict(set)
    for c in cells:
        rows[(c.group, c.dataset, c.model, c.objective)].add(c.seed)
    return rows


def test_every_paper_row_has_five_seeds_and_mnist_is_static(fresh_plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    rows = {**_rows("paper"), **_rows("paper-yahoo-small")}
    assert all(seeds == PAPER_SEEDS for seeds in rows.values())
    datasets = {key[1] for key in rows}
    assert "mnist" not in datasets and "mnist-static" in datasets
    pixelcnn = {k for k in rows if k[2].startswith("pixelcnn")}
    lstm = {k for k in rows if k[2].startswith("lstm")}
    assert {k[1] for k in pixelcnn} == {"mnist-static", "omniglot"}
    assert {k[1] for k in lstm} == {"ptb", "yahoo-valid-train"}
    # The reference variants everywhere, and the reference warm-up beside the plain ELBO.
    assert all(k[2].endswith("-ref") for k in rows)
    assert {k[3] for k in rows} == {"elbo", "kl-anneal-ref", "free-bits"}
    for k in pixelcnn | lstm:
        assert rows[k] == PAPER_SEEDS, k


def test_paper_budgets_follow_the_reference_protocols(fresh_plugins):
    suite = plugins.registries().suites.get("collapse")
    _, cells = select_cells(suite, "paper")
    for c in cells:
        b = c.budget
        if c.model.startswith("lstm"):
            assert (b.lr_decay, b.lr_decay_sticky, b.min_lr) == (0.5, True, 0.03)
        else:  # images: every epoch trained, the best validation -ELBO kept
            assert (b.epochs, b.patience, b.lr_decay) == (100, None, None)
