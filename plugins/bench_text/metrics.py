"""Text metrics. Per-sentence NLL, KL, MI and AU come from the generic metrics; perplexity needs
the per-example token counts that :meth:`LatentVariableModel.num_tokens` provides."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench import MetricValue

if TYPE_CHECKING:  # the plugin registers these metrics without importing torch
    import torch

    from bench.evaluation import EvalContext

PPL_CONVENTION = "exp(sum of IW-NLL / sum of tokens); tokens = words + </s> per sentence"


def perplexity(nll: torch.Tensor, tokens: torch.Tensor) -> float:
    """exp(Σ NLL / Σ tokens): the corpus-level perplexity (not a mean of per-sentence ones)."""
    return math.exp(float(nll.double().sum() / tokens.double().sum()))


def ppl(ctx: EvalContext) -> MetricValue:
    tokens = ctx.posterior.tokens
    if tokens is None:
        # Image models have no tokens; the value is left empty so leaderboards show a blank.
        return MetricValue(None, {"skipped": "model defines no tokens"})  # type: ignore[arg-type]
    nll = -ctx.iw_log_likelihood()
    return MetricValue(
        perplexity(nll, tokens),
        {
            "iw_samples": ctx.settings.iw_samples,
            "n": len(nll),
            "tokens": int(tokens.sum()),
            "convention": "tokens include </s>",
        },
    )


def ppl_bound(ctx: EvalContext) -> MetricValue:
    """The paper's perplexity bound: exp(sum of -ELBO / sum of tokens), one z sample per
    sentence (the skip-VAE reference's ``ppl_bound_vae``, train_text_skip.py line 378)."""
    p = ctx.posterior
    if p.tokens is None:
        return MetricValue(None, {"skipped": "model defines no tokens"})  # type: ignore[arg-type]
    neg_elbo = -p.log_px + p.kl.sum(-1)
    return MetricValue(
        perplexity(neg_elbo, p.tokens),
        {
            "z_samples": 1,
            "n": len(neg_elbo),
            "tokens": int(p.tokens.sum()),
            "convention": "tokens include </s>",
        },
    )
