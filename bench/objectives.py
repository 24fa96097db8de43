"""A base class for objectives that differ only in their KL weight schedule β(step).

An objective's builder is called as ``build(budget, **params)`` with the run's
:class:`~bench.methods.TrainingBudget`; passing that budget on here gives the schedule both
the steps per epoch and the length of the whole run (cyclical annealing, a warm-up over a
fraction of training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.specs import Objective

if TYPE_CHECKING:  # bench.methods imports torch: plugins subclass this class at load time
    from torch import Tensor

    from bench.methods import TrainingBudget


class ScheduledObjective(Objective):
    """``loss = mean over the batch of [-log p(x|z) + β(step) · Σ_d KL_d]``.

    Subclasses implement :meth:`beta`; the base class's β is 1 (the ELBO). :meth:`epochs_done`
    and :meth:`progress` express a step in epochs and as a fraction of the run.

    Args:
        budget: the run's :class:`~bench.methods.TrainingBudget` (the builder's first
            argument): steps per epoch and, unless ``total_steps`` is given, the run's length.
            An integer is the older form, the steps per epoch alone (also accepted as the
            keyword ``steps_per_epoch``).
        total_steps: optimizer steps in the whole run, to override the budget's or to go with
            the older integer form; None with an integer when the schedule does not need it.
    """

    def __init__(
        self,
        budget: TrainingBudget | int | None = None,
        total_steps: int | None = None,
        *,
        steps_per_epoch: int | None = None,
    ) -> None:
        from bench.methods import TrainingBudget

        if isinstance(budget, TrainingBudget):
            steps_per_epoch = budget.steps_per_epoch
            total_steps = budget.total_steps if total_steps is None else total_steps
        elif budget is not None:
            steps_per_epoch = budget
        if steps_per_epoch is None:
            raise TypeError(f"{type(self).__name__} needs the run's budget (or steps_per_epoch)")
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
                f"{type(self).__name__} needs total_steps for a whole-run schedule; pass it "
                "the run's budget"
            )
        return min(1.0, step / self.total_steps)
