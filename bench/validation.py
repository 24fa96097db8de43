"""What a training method sees of the validation split when it asks (``ctx.validate()``).

A method decides *when* to look (the end of an epoch, the last step of a phase); the harness
decides *how*: one posterior pass over the cell's (subset) validation split in evaluation mode,
and the same estimators the leaderboard uses (:mod:`bench.estimators`), so a method that
switches on validation MI sees the figure the row reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bench.contract import LatentVariableModel
from bench.data import Split
from bench.estimators import active_units, mutual_information
from bench.evaluation import PosteriorPass, mean_neg_elbo, posterior_pass
from bench.suite_types import EvalSettings

# Mixed into the seed so a method's validation draws never repeat the training stream's.
_SALT = 7_919


@dataclass(frozen=True)
class Validation:
    """One look at the validation split: the posterior pass (``mu``, ``logvar``, one-sample
    ``log_px``, per-dimension ``kl``; all on the CPU) and the harness's estimators on it."""

    posterior: PosteriorPass
    settings: EvalSettings
    seed: int

    def kl(self) -> float:
        """Mean per-example KL(q(z|x) || p(z)), as the ``kl`` metric."""
        return float(self.posterior.kl.sum(-1).mean())

    def mi(self) -> float:
        """I_q(x; z) over the split (:func:`bench.estimators.mutual_information`), as ``mi``."""
        g = torch.Generator().manual_seed(self.seed)
        p = self.posterior
        return mutual_information(p.mu, p.logvar, self.settings.mi_samples, generator=g)

    def au(self) -> int:
        """Active units (:func:`bench.estimators.active_units`), as ``au``."""
        return active_units(self.posterior.mu, self.settings.au_threshold)

    def neg_elbo(self) -> float:
        """Mean -ELBO (one z per x), the runner's selection score."""
        return mean_neg_elbo(self.posterior)

    def loss(self, fn: Callable[[Tensor, Tensor], Tensor]) -> float:
        """The method's own loss over the split: ``fn(log_px [N], kl [N, D])`` per example (or
        already a mean), averaged over the examples."""
        return float(fn(self.posterior.log_px, self.posterior.kl).mean())


def validation_pass(
    model: LatentVariableModel,
    split: Split,
    settings: EvalSettings,
    seed: int,
    step: int,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
) -> Validation:
    """The pass behind :meth:`bench.StepContext.validate`: ``model`` in evaluation mode (no
    dropout, batch-norm running statistics), its own generator from ``(seed, step)``, so the
    training streams are untouched and a resumed run sees the same numbers; the model's mode
    is restored after."""
    device = next(model.parameters()).device
    salted = (seed * 1_000_003 + step) * _SALT + 1
    gen = torch.Generator(device=device).manual_seed(salted % (2**63))
    was_training = model.training
    model.eval()
    try:
        post = posterior_pass(model, split, settings.batch_size, gen, log_likelihood)
    finally:
        model.train(was_training)
    return Validation(post, settings, salted % (2**63))
