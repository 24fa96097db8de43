"""A base class for objectives that differ only in their KL weight schedule β(step).

Today an objective's builder is called as ``build(steps_per_epoch, **params)`` and does not see
the run's number of epochs, so a schedule over the whole run (cyclical annealing, a warm-up
over a fraction of training) takes the run's length in epochs as one of its own parameters and
passes ``total_steps = epochs * steps_per_epoch`` here. When builders receive the budget, the
same class takes it from there unchanged.
"""

from __future__ import annotations

from torch import Tensor

from bench.specs import Objective


class ScheduledObjective(Objective):
    """``loss = mean over the batch of [-log p(x|z) + β(step) · Σ_d KL_d]``.

    Subclasses implement :meth:`beta`; the base class's β is 1 (the ELBO). :meth:`epochs_done`
    and :meth:`progress` express a step in epochs and as a fraction of the run.

    Args:
        steps_per_epoch: optimizer steps per epoch of the run (the builder's first argument).
        total_steps: optimizer steps in the whole run, if the schedule needs it
            (``epochs * steps_per_epoch``); None when it does not.
    """

    def __init__(self, steps_per_epoch: int, total_steps: int | None = None) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps

    def __call__(self, log_px: Tensor, kl: Tensor, step: int) -> Tensor:
        # beta() is a Python float: the weight costs no device work and no host read.
        return (-log_px + self.beta(step) * kl.sum(-1)).mean()

    def beta(self, step: int) -> float:
        """The KL weight used at optimizer step ``step`` (counted from 0 over the run)."""
        return 1.0

    def epochs_done(self, step: int) -> float:
        """``step`` in epochs: 0.5 halfway through the first epoch."""
        return step / self.steps_per_epoch

    def progress(self, step: int) -> float:
        """The fraction of the run done before ``step``, in [0, 1] (clamped past the end)."""
        if self.total_steps is None:
            raise ValueError(
                f"{type(self).__name__} needs total_steps for a whole-run schedule; pass "
                "epochs * steps_per_epoch"
            )
        return min(1.0, step / self.total_steps)
