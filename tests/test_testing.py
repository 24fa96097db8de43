"""bench.testing: the checks pass every first-party item and catch each kind of violation,
reporting all of them at once with expected and actual values; the fixtures load."""

from __future__ import annotations

import pytest
import torch
from bench_vae.mlp import MLPVAE
from torch import Tensor

from bench import DatasetSpec, MetricSpec, MetricValue, Objective, plugins
from bench.data import DataSplits, TensorSplit
from bench.runner import build_model
from bench.suites import Budget, Cell, EvalSettings
from bench.testing import (
    ContractCheckError,
    check_dataset,
    check_metric,
    check_model,
    check_objective,
)


def mlp(data: DataSplits, skip: bool = True) -> MLPVAE:
    torch.manual_seed(0)
    return MLPVAE(data.info.shape, latent_dim=3, hidden=16, enc_layers=1, dec_layers=2, skip=skip)


def test_fixtures_give_tiny_data_of_each_kind(bench_image_data, bench_text_data, bench_image_batch):
    assert bench_image_data.info.kind == "image" and bench_text_data.info.kind == "text"
    assert bench_image_batch.shape == (8, 1, 8, 8)
    check_dataset(bench_image_data)
    check_dataset(bench_text_data)


class Transposed(MLPVAE):
    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        return super().log_likelihood(x, z).T


class MixesSamples(MLPVAE):
    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        ll = super().log_likelihood(x, z)
        return ll - ll.mean(0) * 0.5  # each sample's score depends on the others


class Syncs(MLPVAE):
    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        ll = super().log_likelihood(x, z)
        return ll if ll.sum().item() < 0 else ll


class BadEncoder(MLPVAE):
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = super().encode(x)
        return mu[:, :2], logvar * float("nan")


@pytest.mark.parametrize("skip", [False, True])
def test_first_party_mlp_models_pass(bench_image_data, bench_image_batch, skip):
    check_model(mlp(bench_image_data, skip), bench_image_batch)


@pytest.mark.parametrize(
    "cls, needles",
    [
        (Transposed, ["log_likelihood(x, z[K=3]): expected shape [3, 8], got shape [8, 3]"]),
        (MixesSamples, ["log_likelihood(x, z)[0] (sample 0 of a K=3 call)", "scored alone"]),
        (Syncs, ["no host reads", "_local_scalar_dense"]),
        (BadEncoder, ["encode(x) mu: expected shape [8, 3], got shape [8, 2]", "logvar"]),
    ],
)
def test_check_model_reports_each_violation(bench_image_data, bench_image_batch, cls, needles):
    torch.manual_seed(0)
    model = cls(bench_image_data.info.shape, 3, 16, 1, 2, True)
    with pytest.raises(ContractCheckError) as err:
        check_model(model, bench_image_batch)
    for needle in needles:
        assert needle in str(err.value)


def test_every_violation_is_listed_at_once(bench_image_data, bench_image_batch):
    class TwoFaults(MLPVAE):
        def prior_log_prob(self, z: Tensor) -> Tensor:
            return z.sum(-1, keepdim=True)

        def decode_mean(self, z: Tensor) -> Tensor:
            return torch.zeros(3)

    torch.manual_seed(0)
    with pytest.raises(ContractCheckError) as err:
        check_model(TwoFaults(bench_image_data.info.shape, 3, 16, 1, 2, True), bench_image_batch)
    assert len(err.value.violations) == 3  # prior [K, B], prior [B], decode_mean
    assert "breaks the contract in 3 ways" in str(err.value)


def test_registered_objectives_pass(bench_registries):
    from bench.methods import Method, TrainingBudget, build_objective

    for spec in bench_registries.objectives:
        defaults = {k: p.default for k, p in spec.params.items()}
        built = build_objective(spec, TrainingBudget(3, 7), defaults)
        if isinstance(built, Method):  # a training procedure: tests/test_remedies.py runs them
            continue
        check_objective(built)


class Summed(Objective):
    def __call__(self, log_px, kl, step):
        return (-log_px + kl.sum(-1)).sum()


class Reads(Objective):
    def __call__(self, log_px, kl, step):
        scale = 1.0 if float(kl.detach().mean()) > 0 else 2.0
        return (-log_px * scale).mean()

    def beta(self, step):
        return torch.tensor(1.0)


class NoDecoder(Objective):
    def __call__(self, log_px, kl, step):
        return kl.sum(-1).mean()


@pytest.mark.parametrize(
    "objective, needles",
    [
        (Summed(), ["on the batch repeated twice", "a mean over the batch"]),
        (Reads(), ["no host reads", "beta(0): expected a Python float, got Tensor"]),
        (NoDecoder(), ["d loss / d log_px at step 0: expected non-zero"]),
    ],
)
def test_check_objective_reports_each_violation(objective, needles):
    with pytest.raises(ContractCheckError) as err:
        check_objective(objective)
    for needle in needles:
        assert needle in str(err.value)


def test_registered_metrics_pass_on_a_model(bench_registries, bench_image_data):
    model = mlp(bench_image_data)
    for spec in bench_registries.metrics:
        value = check_metric(spec, model, bench_image_data.test, train=bench_image_data.train)
        assert isinstance(value, MetricValue)


@pytest.mark.parametrize(
    "compute, needles",
    [
        (lambda ctx: 3.0, ["expected a MetricValue, got float"]),
        (lambda ctx: MetricValue(torch.tensor(1.0)), ["a finite number"]),
        (lambda ctx: MetricValue(1.0, {"t": torch.ones(1)}), ["JSON-serialisable"]),
        (lambda ctx: MetricValue(float(torch.rand(1))), ["with the same seed"]),
    ],
)
def test_check_metric_reports_each_violation(bench_image_data, compute, needles):
    spec = MetricSpec("bad", compute, "min")
    with pytest.raises(ContractCheckError) as err:
        check_metric(spec, mlp(bench_image_data), bench_image_data.test)
    for needle in needles:
        assert needle in str(err.value)


def test_first_party_data_sets_pass(bench_registries):
    check_dataset(bench_registries.datasets.get("digits"))
    check_dataset(bench_registries.datasets.get("text-synthetic"), train=60)


def test_check_dataset_reports_each_violation(bench_image_data):
    d = bench_image_data
    shaped = TensorSplit(d.train.x[:, :, :4], d.train.labels)
    resampled = TensorSplit(d.test.x.clamp(0.2, 0.8), d.test.labels, dynamic_binarization=True)
    broken = DataSplits(d.info, shaped, d.valid, resampled, num_classes=2)
    with pytest.raises(ContractCheckError) as err:
        check_dataset(broken)
    text = str(err.value)
    assert "train.batches(7, shuffle=False) x: expected shape [7, 1, 8, 8], got shape" in text
    assert "test.batches() twice: expected the same batches" in text
    assert "train.labels: expected values in [0, 2)" in text
    spec = DatasetSpec("wrong-kind", lambda data_dir: d, kind="text")
    with pytest.raises(ContractCheckError, match="info.kind: expected the spec's kind 'text'"):
        check_dataset(spec)


def test_runner_built_models_pass(bench_registries, bench_text_data, bench_text_batch):
    """Every registered text model, built by the runner's own builder, passes the checks."""
    for spec in bench_registries.models:
        if "text" not in spec.kinds:
            continue
        cell = Cell(
            "s", "x", "g", "text-synthetic", spec.name, "elbo", 0, {},
            {"emb_dim": 8, "hidden": 12, "latent_dim": 4}, {}, (), Budget(), EvalSettings(),
        )  # fmt: skip
        check_model(build_model(cell, bench_text_data, torch.device("cpu")), bench_text_batch)
    assert plugins.registries() is bench_registries
