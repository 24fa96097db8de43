"""Likelihood heads: log p(x|z) from decoder outputs, for K samples of z at once.

A model's :meth:`~bench.contract.LatentVariableModel.log_likelihood` decodes ``z [K, B, D]``
and hands the decoder's output to one of these; each returns ``[K, B]``, summed over
everything that belongs to one example (pixels, tokens). The data ``x`` is given once per
example and broadcast over the K samples, never copied K times.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) of independent Bernoulli pixels, summed per example.

    Args:
        logits: ``[K, B, *event]`` decoder logits, K samples of z for each of B examples. The
            event shape may differ from ``x``'s (``[K, B, 784]`` against ``x [B, 1, 28, 28]``)
            as long as both hold the same number of values per example.
        x: ``[B, *event]`` binary data (floats in {0, 1}; values in [0, 1] give the
            cross-entropy, as with dynamic binarization's expectations).

    Returns:
        ``[K, B]``: sum over the event of ``x log σ(l) + (1 - x) log(1 - σ(l))``.
    """
    k, b = logits.shape[:2]
    flat = logits.reshape(k, b, -1)
    target = x.reshape(b, -1).expand_as(flat)
    return -F.binary_cross_entropy_with_logits(flat, target, reduction="none").sum(-1)


def categorical_log_likelihood(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """log p(targets | logits) of a sequence of categorical tokens, masked and summed per row.

    Args:
        logits: ``[R, T, V]`` unnormalised scores over a vocabulary of V tokens for each of T
            positions of R rows (a row is one (sample, example) pair: fold K into R).
        targets: ``[R, T]`` token ids (long).
        mask: ``[R, T]``, true (or 1) where the target is a real token; padding positions are
            scored but contribute nothing.

    Returns:
        ``[R]``: ``Σ_t mask[r, t] · log softmax(logits[r, t])[targets[r, t]]``.
    """
    # Flattened to 2-D: log-softmax over a contiguous last dimension, no transposed copy.
    nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return -(nll.view(targets.shape) * mask).sum(-1)
