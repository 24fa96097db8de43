"""Text metrics. Per-sentence NLL, KL, MI and AU come from the generic metrics; perplexity needs
the per-example token counts that :meth:`LatentVariableModel.num_tokens` provides."""

from __future__ import annotations

import math

import torch

from bench import MetricValue
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
