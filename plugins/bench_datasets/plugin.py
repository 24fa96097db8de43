"""Registers the image data sets."""

from __future__ import annotations

from bench import DatasetSpec, hookimpl

from bench_datasets import images


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
