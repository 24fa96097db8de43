"""The loop's counters: where a run is, what it has selected, and what it has cost. Saved in
every checkpoint as a plain dict, so a resumed run continues them exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class LoopState:
    epoch: int = 0  # epochs done (the next one to train)
    step: int = 0  # optimizer steps done
    # Model selection (the BestEpoch listener): the best validation -ELBO and its epoch.
    best: float = math.inf
    best_epoch: int = -1
    bad: int = 0  # epochs since the best one (early stopping)
    # Learning-rate decay (the LrDecay listener).
    decays: int = 0
    bad_lr: int = 0
    decaying: bool = False  # a sticky decay (Budget.lr_decay_sticky) has started
    stop_reason: str | None = None
    # A method's phase as last seen: selection restarts when it changes.
    phase: Any = None
    train_time: float = 0.0
    train_cpu_time: float = 0.0
    train_examples: int = 0
    compile_time: float = 0.0  # of train_time: seconds spent compiling inside training epochs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        """A checkpoint's state; keys this version does not know are ignored and missing ones
        take their defaults (checkpoints of older versions)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def restart_selection(self) -> None:
        """Forget the best epoch and the counts of bad epochs: a new phase starts afresh."""
        self.best, self.best_epoch, self.bad, self.bad_lr = math.inf, -1, 0, 0
        self.decaying = False
