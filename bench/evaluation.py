"""What metrics see: a model, an evaluation split and the estimator settings, with the
posterior pass over the split computed once and shared by every metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bench.contract import LatentVariableModel, reparameterize
from bench.data import Split
from bench.estimators import SampleChunker, gaussian_kl_per_dim, iw_log_likelihood
from bench.suites import EvalSettings


@dataclass
class PosteriorPass:
    """Per-example results of one pass over a split of N examples, D latent dimensions (all on
    the CPU, float32, in the split's unshuffled order).

    Attributes:
        mu: ``[N, D]`` posterior means.
        logvar: ``[N, D]`` posterior log-variances.
        log_px: ``[N]`` log p(x|z) at one sample z ~ q(z|x).
        kl: ``[N, D]`` analytic KL(q(z|x) || N(0, I)) per example and dimension; the
            per-example KL is ``kl.sum(-1)``, the per-dimension average ``kl.mean(0)``.
        labels: ``[N]`` class ids, or None for unlabelled splits.
        tokens: ``[N]`` predicted units per example when the model defines ``num_tokens``,
            else None.
    """

    mu: Tensor
    logvar: Tensor
    log_px: Tensor
    kl: Tensor
    labels: Tensor | None
    tokens: Tensor | None


def mean_neg_elbo(p: PosteriorPass) -> float:
    """-ELBO averaged over the split, one z sample per x: the score the runner selects epochs
    by (and the ``neg_elbo`` metric's value)."""
    return float((-p.log_px + p.kl.sum(-1)).mean())


@torch.no_grad()
def posterior_pass(
    model: LatentVariableModel,
    split: Split,
    batch_size: int,
    generator: torch.Generator | None = None,
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None,
) -> PosteriorPass:
    ll_fn = log_likelihood or model.log_likelihood
    mus, logvars, lls, kls, labels, tokens = [], [], [], [], [], []
    for x, y in split.batches(batch_size):
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, 1, generator=generator)
        lls.append(ll_fn(x, z)[0].float())
        mus.append(mu.float())
        logvars.append(logvar.float())
        kls.append(gaussian_kl_per_dim(mu.float(), logvar.float()))
        if y is not None:
            labels.append(y)
        n_tok = model.num_tokens(x)
        if n_tok is not None:
            tokens.append(n_tok)

    def cat(parts: list[Tensor]) -> Tensor | None:
        return torch.cat(parts).cpu() if parts else None

    return PosteriorPass(
        mu=cat(mus),  # type: ignore[arg-type]
        logvar=cat(logvars),  # type: ignore[arg-type]
        log_px=cat(lls),  # type: ignore[arg-type]
        kl=cat(kls),  # type: ignore[arg-type]
        labels=cat(labels),
        tokens=cat(tokens),
    )


@dataclass
class EvalContext:
    """Handed to every metric's ``compute``.

    Attributes:
        model: the model in evaluation mode, on ``device``.
        split: the evaluation split: validation after each epoch (``per_epoch`` metrics),
            test at the end.
        settings: the cell's estimator settings (K, batch size, AU threshold...).
        device: where the model and the split live.
        seed: the run's seed; :meth:`generator` derives each metric's randomness from it.
        train: the training split, for metrics that fit something (the linear probe), or None.
        log_likelihood: the harness's replacement for ``model.log_likelihood`` (autocast or
            compiled), or None.

    :attr:`posterior` and :meth:`iw_log_likelihood` are computed once and shared by every
    metric of the evaluation.
    """

    model: LatentVariableModel
    split: Split
    settings: EvalSettings
    device: torch.device
    seed: int = 0
    train: Split | None = None
    log_likelihood: Callable[[Any, Tensor], Tensor] | None = None
    # progress(done, total): long loops report their batches (the runner's evaluation bar).
    progress: Callable[[int, int], None] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def generator(self, salt: int = 0) -> torch.Generator:
        """A fresh generator on the device, so each metric's randomness is reproducible alone."""
        return torch.Generator(device=self.device).manual_seed(self.seed * 1000003 + salt)

    @property
    def posterior(self) -> PosteriorPass:
        """One pass over ``split`` (cached): posterior parameters, one-sample log p(x|z), KL."""
        if "posterior" not in self._cache:
            self._cache["posterior"] = posterior_pass(
                self.model,
                self.split,
                self.settings.batch_size,
                self.generator(1),
                self.log_likelihood,
            )
        return self._cache["posterior"]

    @property
    def train_posterior(self) -> PosteriorPass:
        """The same pass over ``settings.probe_train_size`` training examples, a stratified
        random sample (``Split.subset``): the same examples for every model and seed."""
        if self.train is None:
            raise ValueError("this evaluation has no training split")
        if "train_posterior" not in self._cache:
            split = self.train
            if len(split) > self.settings.probe_train_size:
                split = split.subset(self.settings.probe_train_size)
            self._cache["train_posterior"] = posterior_pass(
                self.model,
                split,
                self.settings.batch_size,
                self.generator(2),
                self.log_likelihood,
            )
        return self._cache["train_posterior"]

    def iw_log_likelihood(self) -> Tensor:
        """Per-example IW log p(x) with K = settings.iw_samples (cached)."""
        if "iw" not in self._cache:
            g = self.generator(3)
            batch = self.settings.batch_size
            total = -(-len(self.split) // batch)
            # One chunk plan for the whole split: the memory probe runs once, not per batch.
            chunker = SampleChunker(self.model, self.settings.iw_samples)
            parts = []
            for i, (x, _) in enumerate(self.split.batches(batch)):
                parts.append(
                    iw_log_likelihood(
                        self.model,
                        x,
                        self.settings.iw_samples,
                        chunk=chunker,
                        generator=g,
                        log_likelihood=self.log_likelihood,
                    ).cpu()
                )
                if self.progress is not None:
                    self.progress(i + 1, total)
            self._cache["iw"] = torch.cat(parts)
        return self._cache["iw"]
