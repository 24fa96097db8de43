"""Registers the image data sets.

The loaders import their modules (numpy, torch) when a run loads data, not when the plugin
registers: ``bench ls`` and ``bench show`` stay free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import DatasetSpec, Param, hookimpl

if TYPE_CHECKING:
    from pathlib import Path

    from bench import DataSplits

OMNIGLOT_VALID = 1345  # omniglot.DEFAULT_VALID (tests/test_omniglot.py keeps them equal)


def load_digits(data_dir: Path) -> DataSplits:
    from bench_datasets import images

    return images.load_digits(data_dir)


def load_mnist(data_dir: Path) -> DataSplits:
    from bench_datasets import images

    return images.load_mnist(data_dir)


def load_mnist_static(data_dir: Path) -> DataSplits:
    from bench_datasets import images

    return images.load_mnist_static(data_dir)


def load_omniglot(
    data_dir: Path, n_valid: int = OMNIGLOT_VALID, labels: bool = False
) -> DataSplits:
    from bench_datasets import omniglot

    return omniglot.load_omniglot(data_dir, n_valid, labels)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            "digits",
            load_digits,
            "scikit-learn 8x8 digits, dynamically binarized; needs no files (smoke runs)",
            sizes="1,200 / 297 / 300",
        )
    )
    register(
        DatasetSpec(
            "mnist",
            load_mnist,
            "MNIST 28x28, dynamically binarized (resampled every batch), labelled",
            sizes="50,000 / 10,000 / 10,000",
        )
    )
    register(
        DatasetSpec(
            "mnist-static",
            load_mnist_static,
            "statically binarized MNIST (binarized_mnist/*.amat); labels recovered from "
            "MNIST when its IDX files are there too",
            sizes="50,000 / 10,000 / 10,000",
        )
    )
    register(
        DatasetSpec(
            "omniglot",
            load_omniglot,
            "Omniglot 28x28 from the 105x105 originals (inverted, area-resized), drawers 0-14 "
            "train / 15-19 test, dynamically binarized; stand-in for Burda's chardata.mat",
            sizes="23,000 / 1,345 / 8,115",
            params={
                "n_valid": Param(
                    OMNIGLOT_VALID,
                    100,
                    5000,
                    step=1,
                    minimum=1,
                    help="validation images carved from the training drawers",
                ),
                "labels": Param(
                    False,
                    choices=(False, True),
                    help="attach character ids (1,623 classes) for the probe",
                ),
            },
        )
    )
