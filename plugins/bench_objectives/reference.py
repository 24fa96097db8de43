"""The KL warm-up exactly as the skip-VAE reference code runs it (yoonkim/skip-vae,
``train_text_skip.py`` lines 106-109 and 158-159, ``train_img_skip.py`` lines 125-128 and
147-148; harvardnlp/sa-vae ``train_img.py`` the same).

The weight starts at ``beta0`` and, *before* every optimizer step, grows by
``1 / (epochs * steps_per_epoch)`` up to 1. The increment does not depend on ``beta0``, so with
``beta0 = 0.1`` the weight reaches 1 after 0.9 of the warm-up epochs, and the first step already
uses ``beta0`` plus one increment. (``kl-anneal`` instead rises from ``beta0`` at step 0 to 1 at
the end of ``epochs``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import ScheduledObjective

if TYPE_CHECKING:
    from bench import TrainingBudget


class ReferenceWarmup(ScheduledObjective):
    """-log p(x|z) + beta(step) * KL with the reference code's step-incremented beta."""

    def __init__(self, budget: TrainingBudget, beta0: float, epochs: float) -> None:
        super().__init__(budget)
        self.beta0 = beta0
        self.increment = 1.0 / max(1e-12, epochs * self.steps_per_epoch)

    def beta(self, step: int) -> float:
        # ``step`` counts from 0; the reference adds its increment before step 1 is taken.
        return min(1.0, self.beta0 + (step + 1) * self.increment)
