"""First-party objectives against their formulas, and through bench.testing's contract check;
builders written against the older signature still train, with a warning."""

from __future__ import annotations

import warnings

import pytest
import torch
from bench_objectives.plugin import Elbo, FreeBits, LinearAnneal

from bench import (
    Budget,
    EvalSettings,
    Group,
    ObjectiveSpec,
    Param,
    ScheduledObjective,
    TrainingBudget,
    hookimpl,
    methods,
    plugins,
)
from bench.methods import build_objective
from bench.runner import run_suite
from bench.testing import check_objective
from tests.helpers.suites import SMALL_MLP, cpu_options, one_group_suite

LOG_PX = torch.tensor([-10.0, -20.0])
KL = torch.tensor([[0.1, 2.0], [0.3, 1.0]])


def test_elbo_is_the_batch_mean_negative_bound():
    torch.testing.assert_close(
        Elbo(TrainingBudget(1, 5))(LOG_PX, KL, 3), torch.tensor((12.1 + 21.3) / 2)
    )


def test_linear_anneal_reaches_one_after_its_epochs():
    obj = LinearAnneal(TrainingBudget(epochs=4, steps_per_epoch=10), beta0=0.2, epochs=2.0)
    assert [obj.beta(s) for s in (0, 10, 20, 500)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    torch.testing.assert_close(obj(LOG_PX, KL, 10), torch.tensor((10 + 20 + 0.6 * 3.4) / 2))


def test_free_bits_clamps_each_dimensions_batch_mean_kl():
    # Batch-mean KL per dimension: [0.2, 1.5]; lam = 0.5 lifts the first to 0.5.
    torch.testing.assert_close(FreeBits(0.5)(LOG_PX, KL, 0), torch.tensor(15.0 + 0.5 + 1.5))


SEVEN = TrainingBudget(epochs=2, steps_per_epoch=7)


@pytest.mark.parametrize("objective", [Elbo(SEVEN), LinearAnneal(SEVEN, 0.0, 1.0), FreeBits(0.25)])
def test_objectives_keep_the_contract(objective):
    check_objective(objective)


class OldWarmup(ScheduledObjective):
    """Written against the older builder signature, as a published plugin may be: the builder
    (this class) takes the steps per epoch as an integer."""

    def __init__(self, steps_per_epoch: int, beta: float) -> None:
        super().__init__(steps_per_epoch)
        self.beta_max = beta

    def beta(self, step: int) -> float:
        return self.beta_max * min(1.0, self.epochs_done(step))


class OldStylePlugin:
    @hookimpl
    def register_objectives(self, register):
        register(ObjectiveSpec("old-warmup", OldWarmup, "old signature", {"beta": Param(2.0)}))


def old_signature_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, DeprecationWarning) and "steps_per_epoch" in str(w.message)
    ]


def test_an_objective_with_the_older_signature_trains_and_warns_once_naming_its_plugin(
    fresh_plugins, tmp_path, monkeypatch
):
    monkeypatch.setattr(methods, "_WARNED", set())
    plugins.register_plugin(OldStylePlugin(), "old-style", "bench-old-style 0.3")
    group = Group(
        "g",
        ("digits",),
        ("mlp-vae",),
        ("old-warmup",),
        seeds=(0, 1),
        metrics=("neg_elbo",),
        model_params={"mlp-vae": SMALL_MLP},
        budget=Budget(epochs=1, batch_size=50, train_subset=100, valid_subset=50, test_subset=50),
        eval=EvalSettings(iw_samples=2, batch_size=50),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, records = run_suite(one_group_suite("old", group), None, cpu_options(tmp_path))
        spec = plugins.registries().objectives.get("old-warmup")
        built = build_objective(spec, TrainingBudget(epochs=3, steps_per_epoch=7), {"beta": 2.0})
    assert [r["status"] for r in records] == ["finished", "finished"]
    assert isinstance(built, OldWarmup) and built.steps_per_epoch == 7  # still the integer
    (message,) = old_signature_warnings(caught)  # two cells and a third build: one warning
    assert "objective 'old-warmup' (plugin 'old-style', bench-old-style 0.3)" in message
    assert "bench.TrainingBudget" in message


def test_first_party_objectives_use_the_budget_signature(fresh_plugins, monkeypatch):
    monkeypatch.setattr(methods, "_WARNED", set())  # a warning given earlier is given again
    budget = TrainingBudget(epochs=3, steps_per_epoch=7)
    specs = [
        s for s in plugins.registries().objectives if s.distribution.startswith("collapse-bench")
    ]
    assert len(specs) >= 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for spec in specs:
            build_objective(spec, budget, {k: p.default for k, p in spec.params.items()})
