""":func:`check_model`: a model against the contract of
:class:`~bench.contract.LatentVariableModel`, one named step after another."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from bench.contract import LatentVariableModel, reparameterize
from bench.testing.host_reads import HostReads
from bench.testing.violations import ViolationReport


@contextmanager
def model_mode(model: torch.nn.Module, train: bool) -> Iterator[None]:
    """``model`` in training or evaluation mode for the block, then back as it was."""
    before = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(before)


def check_model(
    model: LatentVariableModel,
    batch: Any,
    *,
    samples: int = 3,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    seed: int = 0,
) -> None:
    """Check a model against the contract of :class:`~bench.contract.LatentVariableModel`
    on one batch, in evaluation mode (dropout off) unless stated.

    Checked, each reported with the expected and actual values:

    - ``latent_dim`` is a positive int and the model has parameters;
    - ``encode(x)`` returns ``(mu, logvar)``, each ``[B, D]`` and finite;
    - ``log_likelihood(x, z)`` returns ``[K, B]`` for K = 1 and K = ``samples``, finite, and
      row k of the K-sample call equals a call with that sample alone (the K axis is never
      mixed with the batch axis);
    - ``log_likelihood`` reads nothing back to the host (see :class:`HostReads`);
    - ``prior_log_prob`` gives ``[K, B]`` for ``[K, B, D]`` and ``[B]`` for ``[B, D]``, finite;
    - ``sample_prior(n)`` gives ``[n, D]``;
    - ``decode_mean(z [B, D])``, when defined, gives B examples (the batch's shape for tensor
      batches);
    - ``num_tokens(x)``, when defined, gives ``[B]`` non-negative counts;
    - in training mode, the negative ELBO backpropagates to finite gradients, reaching the
      parameters of both ``encode`` and ``log_likelihood``.

    Args:
        model: the model, on the batch's device.
        batch: one batch ``x`` as the model's data set yields it.
        samples: K for the K-sample checks (> 1).
        rtol: relative tolerance of "sample k scored alone equals row k".
        atol: absolute tolerance of the same.
        seed: seeds the posterior samples.

    Raises:
        ContractCheckError: listing every violation.
    """
    _ModelCheck(model, batch, samples, rtol, atol).run(seed)


class _ModelCheck:
    """The steps of :func:`check_model` on one model and batch. They share one report, and
    each leaves what the next needs (latent size, parameters, posterior samples ``z``)."""

    def __init__(
        self, model: LatentVariableModel, batch: Any, samples: int, rtol: float, atol: float
    ) -> None:
        self.model, self.batch, self.samples = model, batch, samples
        self.rtol, self.atol = rtol, atol
        self.report = ViolationReport()
        self.name = type(model).__name__

    def run(self, seed: int) -> None:
        self.require_model_basics()
        self.b = len(self.batch)
        self.generator = torch.Generator(device=self.params[0].device).manual_seed(seed)
        with model_mode(self.model, train=False), torch.no_grad():
            mu, logvar = self.require_encode()
            self.z = reparameterize(mu, logvar, self.samples, generator=self.generator)
            self.check_log_likelihood()
            self.check_prior()
            self.check_decode_mean()
            self.check_num_tokens()
        self.report.raise_if_any(self.name)
        with model_mode(self.model, train=True):
            self.check_training()
        self.report.raise_if_any(self.name)

    def require_model_basics(self) -> None:
        """A LatentVariableModel with a positive int ``latent_dim`` and parameters; each
        failure stops the check at once (nothing else can run without them)."""
        report, model = self.report, self.model
        if not isinstance(model, LatentVariableModel):
            report.add("model", "a bench.LatentVariableModel subclass", type(model).__name__)
            report.raise_if_any(self.name)
        d = getattr(model, "latent_dim", None)
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            report.add("latent_dim", "a positive int", repr(d))
            report.raise_if_any(self.name)
        self.d = d
        self.params = list(model.parameters())
        if not self.params:
            report.add("parameters()", "at least one parameter", "none")
            report.raise_if_any(self.name)

    def require_encode(self) -> tuple[Tensor, Tensor]:
        """``encode(x)`` gives ``(mu, logvar)``, each ``[B, D]`` and finite; the check stops
        here otherwise (every later step needs samples of the posterior)."""
        report = self.report
        ok, out = report.call("encode(x)", lambda: self.model.encode(self.batch))
        if ok and (not isinstance(out, tuple) or len(out) != 2):
            report.add("encode(x)", "a tuple (mu, logvar)", type(out).__name__)
            ok = False
        if not ok:
            report.raise_if_any(self.name)
        mu, logvar = out
        for label, t in (("mu", mu), ("logvar", logvar)):
            if report.shape(f"encode(x) {label}", t, (self.b, self.d)):
                report.finite(f"encode(x) {label}", t)
        report.raise_if_any(self.name)
        return mu, logvar

    def check_log_likelihood(self) -> None:
        """``log_likelihood(x, z)`` of K samples: ``[K, B]``, finite, no host reads, each row
        the same as its sample scored alone."""
        report = self.report
        where = f"log_likelihood(x, z[K={self.samples}])"
        with HostReads() as reads:
            ok, ll = report.call(where, lambda: self.model.log_likelihood(self.batch, self.z))
        if reads.counts:
            report.add(
                where,
                "no host reads (.item(), float(), if on a tensor, .tolist(), .cpu())",
                dict(reads.counts),
            )
        if ok and report.shape(where, ll, (self.samples, self.b)):
            report.finite(where, ll)
            self.check_samples_scored_apart(ll)

    def check_samples_scored_apart(self, ll: Tensor) -> None:
        """Row k of the K-sample call equals sample k scored alone: the K axis never mixes
        with the batch axis. Stops at the first row that differs."""
        report, samples = self.report, self.samples
        for k in range(samples):
            ok, one = report.call(
                "log_likelihood(x, z[K=1])",
                lambda k=k: self.model.log_likelihood(self.batch, self.z[k : k + 1]),
            )
            if not ok or not report.shape("log_likelihood(x, z[K=1])", one, (1, self.b)):
                return
            if not torch.allclose(one[0].double(), ll[k].double(), rtol=self.rtol, atol=self.atol):
                worst = int((one[0] - ll[k]).abs().argmax())
                report.add(
                    f"log_likelihood(x, z)[{k}] (sample {k} of a K={samples} call)",
                    f"the value for sample {k} scored alone, "
                    f"{float(one[0, worst]):.6g} at example {worst}",
                    f"{float(ll[k, worst]):.6g}",
                )
                return

    def check_prior(self) -> None:
        """``prior_log_prob`` of ``[K, B, D]`` and ``[B, D]``, and ``sample_prior(5)``."""
        report, model, z = self.report, self.model, self.z
        ok, lp = report.call("prior_log_prob(z [K, B, D])", lambda: model.prior_log_prob(z))
        if ok and report.shape("prior_log_prob(z [K, B, D])", lp, (self.samples, self.b)):
            report.finite("prior_log_prob(z [K, B, D])", lp)
        ok, lp1 = report.call("prior_log_prob(z [B, D])", lambda: model.prior_log_prob(z[0]))
        if ok:
            report.shape("prior_log_prob(z [B, D])", lp1, (self.b,))
        ok, zs = report.call("sample_prior(5)", lambda: model.sample_prior(5))
        if ok:
            report.shape("sample_prior(5)", zs, (5, self.d))

    def check_decode_mean(self) -> None:
        """``decode_mean(z [B, D])``: None, or B examples (the batch's own shape for tensor
        batches)."""
        report, batch, where = self.report, self.batch, "decode_mean(z [B, D])"
        ok, mean = report.call(where, lambda: self.model.decode_mean(self.z[0]))
        if not ok or mean is None:
            return
        expected = tuple(batch.shape) if isinstance(batch, Tensor) else None
        if not isinstance(mean, Tensor):
            report.add(where, "None or a tensor", type(mean).__name__)
        elif expected is not None:
            report.shape(where, mean, expected)
        elif mean.shape[0] != self.b:
            report.add(where, f"{self.b} examples", list(mean.shape))

    def check_num_tokens(self) -> None:
        """``num_tokens(x)``: None, or ``[B]`` non-negative counts."""
        report = self.report
        ok, tokens = report.call("num_tokens(x)", lambda: self.model.num_tokens(self.batch))
        shaped = ok and tokens is not None and report.shape("num_tokens(x)", tokens, (self.b,))
        if shaped and bool((tokens < 0).any()):
            report.add("num_tokens(x)", "non-negative counts", tokens.tolist())

    def check_training(self) -> None:
        """The negative ELBO of one sample backpropagates to finite gradients, which reach
        both ``encode`` and ``log_likelihood``."""
        model, batch, where = self.model, self.batch, "backward of the negative ELBO"
        model.zero_grad(set_to_none=True)
        mu, logvar = model.encode(batch)
        z = reparameterize(mu, logvar, 1, generator=self.generator)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        loss = (-model.log_likelihood(batch, z)[0] + kl).mean()
        ok, _ = self.report.call(where, loss.backward)
        if ok:
            grads = [p.grad for p in self.params if p.grad is not None]
            if not grads:
                self.report.add(where, "gradients", "no parameter got one")
            elif not all(bool(torch.isfinite(gr).all()) for gr in grads):
                self.report.add(where, "finite gradients", "inf or nan")
            self.check_both_halves_train()
        model.zero_grad(set_to_none=True)

    def check_both_halves_train(self) -> None:
        """Some parameter gets a gradient from ``encode`` alone, and some from
        ``log_likelihood`` at a fixed z."""
        report, model, batch, params = self.report, self.model, self.batch, self.params
        model.zero_grad(set_to_none=True)
        mu, logvar = model.encode(batch)
        (mu.sum() + logvar.sum()).backward()
        if not _any_gradient(params):
            report.add("encode(x)", "a result that depends on the model's parameters", "none")
        model.zero_grad(set_to_none=True)
        p0, d = params[0], model.latent_dim
        z = torch.randn(
            1, len(batch), d, generator=self.generator, device=p0.device, dtype=p0.dtype
        )
        model.log_likelihood(batch, z).sum().backward()
        if not _any_gradient(params):
            report.add("log_likelihood(x, z)", "a result that depends on the parameters", "none")


def _any_gradient(params: list[torch.nn.Parameter]) -> bool:
    return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
