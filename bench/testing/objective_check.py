""":func:`check_objective`: a built objective called the way the runner calls it, at each step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from bench.specs import Objective
from bench.testing.host_reads import HostReads
from bench.testing.violations import ViolationReport


def check_objective(
    objective: Objective,
    *,
    batch_size: int = 6,
    latent_dim: int = 4,
    steps: Sequence[int] = (0, 1, 10, 100, 10_000),
    seed: int = 0,
) -> None:
    """Check a built objective (what ``ObjectiveSpec.build`` returns) the way the runner calls
    it, at each of ``steps``:

    - ``objective(log_px [B], kl [B, D], step)`` returns a finite scalar tensor;
    - it backpropagates to ``log_px`` with finite, non-zero gradients (the decoder must
      train) and to ``kl`` with finite gradients;
    - it is a mean over the batch, not a sum: the loss of the batch repeated twice is the same;
    - it reads nothing back to the host (see :class:`HostReads`);
    - ``beta(step)`` is a finite, non-negative Python number.

    Args:
        objective: the built objective.
        batch_size: B of the random ``log_px`` and ``kl`` it is called with.
        latent_dim: D of ``kl``.
        steps: the steps it is called at.
        seed: seeds the random inputs.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = ViolationReport()
    g = torch.Generator().manual_seed(seed)
    log_px = -torch.rand(batch_size, generator=g) * 50
    kl = torch.rand(batch_size, latent_dim, generator=g) * 2
    for step in steps:
        _check_step(report, objective, log_px, kl, step)
    report.raise_if_any(type(objective).__name__)


def _check_step(
    report: ViolationReport, objective: Objective, log_px: Tensor, kl: Tensor, step: int
) -> None:
    """The checks at one step. A call that fails or gives no scalar ends them (there is no
    loss to check), ``beta`` included."""
    batch_size, latent_dim = kl.shape
    where = f"objective(log_px [{batch_size}], kl [{batch_size}, {latent_dim}], step={step})"
    lp = log_px.clone().requires_grad_(True)
    k = kl.clone().requires_grad_(True)
    with HostReads() as reads:
        ok, loss = report.call(where, lambda: objective(lp, k, step))
    if reads.counts:
        report.add(where, "no host reads (.item(), float(), ...)", dict(reads.counts))
    if not ok or not report.shape(where, loss, ()):
        return
    report.finite(where, loss)
    ok, _ = report.call(f"backward of {where}", loss.backward)
    if ok:
        _check_gradients(report, lp.grad, k.grad, step)
    _check_mean_over_batch(report, objective, where, log_px, kl, step, loss)
    _check_beta(report, objective, step)


def _check_gradients(
    report: ViolationReport, d_log_px: Tensor | None, d_kl: Tensor | None, step: int
) -> None:
    """Finite, non-zero gradients to ``log_px`` (the decoder must train); finite ones to
    ``kl`` when it has any."""
    if d_log_px is None or not bool(d_log_px.abs().sum() > 0):
        report.add(f"d loss / d log_px at step {step}", "non-zero", d_log_px)
    elif not bool(torch.isfinite(d_log_px).all()):
        report.add(f"d loss / d log_px at step {step}", "finite", d_log_px)
    if d_kl is not None and not bool(torch.isfinite(d_kl).all()):
        report.add(f"d loss / d kl at step {step}", "finite", d_kl)


def _check_mean_over_batch(
    report: ViolationReport,
    objective: Objective,
    where: str,
    log_px: Tensor,
    kl: Tensor,
    step: int,
    loss: Tensor,
) -> None:
    """The batch repeated twice gives the same loss: a mean over the batch, not a sum."""
    with torch.no_grad():
        twice = objective(torch.cat([log_px, log_px]), torch.cat([kl, kl]), step)
        if isinstance(twice, Tensor) and not torch.allclose(twice, loss.detach(), rtol=1e-5):
            report.add(
                f"{where} on the batch repeated twice",
                f"the same loss {float(loss):.6g} (a mean over the batch)",
                f"{float(twice):.6g}",
            )


def _check_beta(report: ViolationReport, objective: Objective, step: int) -> None:
    """``beta(step)`` is a finite, non-negative Python number (it is logged, not trained)."""
    beta = report.call(f"beta({step})", lambda: objective.beta(step))[1]
    if isinstance(beta, Tensor) or not isinstance(beta, (int, float)):
        report.add(f"beta({step})", "a Python float", type(beta).__name__)
    elif not math.isfinite(beta) or beta < 0:
        report.add(f"beta({step})", "a finite value >= 0", beta)
