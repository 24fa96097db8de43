"""Registers the image data sets."""

from __future__ import annotations

from bench import DatasetSpec, Param, hookimpl
from bench_datasets import images, omniglot


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            "digits",
            images.load_digits,
            "scikit-learn 8x8 digits, dynamically binarized; needs no files (smoke runs)",
            sizes="1,200 / 297 / 300",
        )
    )
    register(
        DatasetSpec(
            "mnist",
            images.load_mnist,
            "MNIST 28x28, dynamically binarized (resampled every batch), labelled",
            sizes="50,000 / 10,000 / 10,000",
        )
    )
    register(
        DatasetSpec(
            "mnist-static",
            images.load_mnist_static,
            "statically binarized MNIST (binarized_mnist/*.amat), unlabelled",
            sizes="50,000 / 10,000 / 10,000",
        )
    )
    register(
        DatasetSpec(
            "omniglot",
            omniglot.load_omniglot,
            "Omniglot 28x28 from the 105x105 originals (inverted, area-resized), drawers 0-14 "
            "train / 15-19 test, dynamically binarized; stand-in for Burda's chardata.mat",
            sizes="23,000 / 1,345 / 8,115",
            params={
                "n_valid": Param(
                    omniglot.DEFAULT_VALID,
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
