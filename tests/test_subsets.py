"""Subsets are seeded random samples, stratified by label: the same examples for every row, and
never a prefix of a data set stored in order (by class, character or article)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bench_datasets import omniglot
from bench_text.batching import TextSplit

from bench.data import SUBSET_SEED, TensorSplit, class_counts, subset_indices, subset_record
from bench.runner import run_suite
from bench.runner.cell import subset
from bench.suites import load_suite_file
from tests.helpers.data import real_data_dir
from tests.helpers.suites import SMALL_MLP, cpu_options, suite_toml

pytestmark = pytest.mark.usefixtures("one_thread")

# Ten classes of the sizes of MNIST's test set, stored class by class as the static copy is.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _ordered_labels(counts: list[int] = MNIST_TEST_COUNTS) -> torch.Tensor:
    return torch.arange(len(counts)).repeat_interleave(torch.tensor(counts))


def test_a_labelled_subset_gives_each_class_its_share():
    labels = _ordered_labels()
    idx = subset_indices(len(labels), 1000, labels)
    assert len(idx) == 1000 and len(set(idx.tolist())) == 1000
    assert idx.tolist() == sorted(idx.tolist())  # the stored order is kept
    counts = torch.bincount(labels[idx], minlength=10)
    share = torch.tensor(MNIST_TEST_COUNTS) * 1000 / len(labels)
    assert ((counts - share).abs() <= 1).all(), (counts, share)


def test_subsets_are_seeded_nested_and_the_same_for_every_call():
    labels = _ordered_labels()
    small, large = (subset_indices(len(labels), n, labels) for n in (300, 1000))
    assert set(small.tolist()) <= set(large.tolist())
    assert subset_indices(len(labels), 1000, labels).equal(large)
    assert not subset_indices(len(labels), 1000, labels, seed=SUBSET_SEED + 1).equal(large)
    assert subset_indices(50, 80).equal(torch.arange(50))  # n >= size keeps everything
    spread = subset_indices(10000, 1000)  # unlabelled: uniform over the stored order
    assert torch.histc(spread.float(), bins=10, min=0, max=10000).min() >= 60


def test_tensor_split_subset_is_a_stratified_sample_with_its_labels():
    labels = _ordered_labels()
    x = labels.float().unsqueeze(1).repeat(1, 3)  # each example remembers its class
    split = TensorSplit(x, labels, dynamic_binarization=True)
    part = split.subset(1000)
    assert len(part) == 1000 and part.dynamic_binarization
    assert part.labels.equal(part.x[:, 0].long())
    assert len(class_counts(part.labels)) == 10
    # The runner's budget subsets go through the same method: the same examples every time.
    assert subset(split, 1000).labels.equal(part.labels)
    assert subset(split, None) is split and subset(split, 20000) is split


def test_text_split_subset_is_random_sentences():
    lengths = torch.arange(3, 1003) % 40 + 3  # sentence i is identified by its first token
    ids = torch.zeros(1000, 45, dtype=torch.long)
    ids[:, 1] = torch.arange(1000)
    split = TextSplit(ids, lengths)
    part = split.subset(100)
    kept = part.ids[:, 1]
    assert len(part) == 100 and kept.equal(subset_indices(1000, 100))
    assert part.lengths.equal(lengths[kept]) and kept.max() > 900  # not the first articles


def test_subset_record_names_seed_size_and_class_counts():
    labels = _ordered_labels()
    split = TensorSplit(torch.zeros(len(labels), 2), labels)
    record = subset_record(split, split.subset(500))
    assert record["size"] == 500 and record["of"] == len(labels)
    assert record["seed"] == SUBSET_SEED and record["sample"] == "random, stratified by label"
    assert sum(record["class_counts"].values()) == 500 and len(record["class_counts"]) == 10
    assert subset_record(split, split) == {"size": len(labels), "of": len(labels)}
    many = TensorSplit(torch.zeros(3000, 2), torch.arange(3000) % 1500)
    summary = subset_record(many, many.subset(1000))
    assert summary["classes"] == 1000 and summary["per_class"] == [1, 1]
    plain = TensorSplit(torch.zeros(100, 2))
    assert subset_record(plain, plain.subset(10))["sample"] == "random"


def test_runs_record_their_subsets_and_the_board_says_how(fresh_plugins, workdir):
    from bench import leaderboard as lb

    path = workdir / "s.toml"
    path.write_text(
        suite_toml(
            "s",
            model_params={"mlp-vae": SMALL_MLP},
            budget={"epochs": 1, "train_subset": 200, "valid_subset": 100},
            eval={"iw_samples": 2},
            metrics=["neg_elbo", "probe_acc"],
        )
    )
    _, records = run_suite(load_suite_file(path), None, cpu_options(workdir))
    subsets = json.loads((records[0].run_dir / "record.json").read_text())["subsets"]
    assert subsets["train"]["size"] == 200 and subsets["train"]["seed"] == SUBSET_SEED
    assert sum(subsets["valid"]["class_counts"].values()) == 100
    assert subsets["test"] == {"size": 300, "of": 300}
    board = lb.build(records, "s", "custom")
    (note, _), *_ = board.notes["digits"]
    assert "train 200 of 1,200 (random, stratified by label, seed 2718)" in note
    assert "test 300" in note


# ---- ordered data sets: a subset of 1,000 covers every class -------------------------------


def _root(*names: str) -> Path:
    """The shared data folder, when it holds ``names``; else the test is skipped."""
    root = real_data_dir()
    if root is None or not all((root / name).exists() for name in names):
        pytest.skip(f"{', '.join(names)} not in the data folder")
    return root


def test_mnist_test_subset_covers_every_class():
    from bench_datasets.images import load_mnist

    test = load_mnist(_root("mnist")).test.subset(1000)
    assert len(class_counts(test.labels)) == 10
    assert min(class_counts(test.labels).values()) >= 85


def test_omniglot_subset_spans_the_characters():
    root = _root(*(f"omniglot/{f}" for f in omniglot.SOURCE_FILES))
    labelled = omniglot.load_omniglot(root, labels=True)
    # Stored character by character: 1,000 of the 8,115 test images are 1,000 characters, from
    # every tenth of the character list (alphabets come in order) and both archives.
    chars = labelled.test.subset(1000).labels
    assert len(chars.unique()) == 1000
    assert torch.histc(chars.float(), bins=10, min=0, max=1623).min() >= 50
    plain = omniglot.load_omniglot(root).test
    idx = subset_indices(len(plain), 1000)
    assert torch.histc(idx.float(), bins=10, min=0, max=len(plain)).min() >= 60


@pytest.mark.parametrize(
    ("loader", "needs"),
    [("load_ptb", "ptb/ptb.train.txt"), ("load_yahoo_valid_train", "yahoo/valid.txt")],
)
def test_text_subset_is_spread_over_the_corpus(monkeypatch, tmp_path, loader, needs):
    from bench_text import corpus

    root = _root(needs)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    train = getattr(corpus, loader)(root).train  # PTB article by article; Yahoo as stored
    part = train.subset(1000)
    # Each kept sentence is found at its place in the corpus: every tenth of it is drawn from.
    idx = subset_indices(len(train), 1000)
    assert part.ids.equal(train.ids[idx]) and part.lengths.equal(train.lengths[idx])
    assert torch.histc(idx.float(), bins=10, min=0, max=len(train)).min() >= 60


@pytest.mark.slow
def test_static_mnist_subset_covers_every_class():
    from bench_datasets.images import load_mnist_static

    root = _root("binarized_mnist", "mnist")
    data = load_mnist_static(root)  # labels recovered from MNIST (cached after the first time)
    for split in (data.train, data.valid, data.test):
        counts = class_counts(split.subset(1000).labels)
        assert len(counts) == 10 and min(counts.values()) >= 85, counts
