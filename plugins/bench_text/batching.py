"""Token batches and a length-bucketed text split implementing :class:`bench.data.Split`.

Sentences are stored padded in one ``[N, L_max]`` tensor (row = ``<s> w_1 .. w_n </s>``) so a
batch is a single gather; each batch is trimmed to its own longest sentence. Batches are drawn
from length-sorted order so padding is small, and their order is shuffled for training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from bench.data import SUBSET_SEED, subset_indices


@dataclass
class TokenBatch:
    """``ids [B, L]``: ``<s> w_1 .. w_n </s>`` then padding; ``lengths [B]`` counts ``<s>`` and
    ``</s>``. The decoder reads ``ids[:, :-1]`` and predicts ``ids[:, 1:]``."""

    ids: Tensor
    lengths: Tensor
    pad_id: int = 0

    def __len__(self) -> int:
        return self.ids.shape[0]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.ids.to(device), self.lengths.to(device), self.pad_id)

    @property
    def inputs(self) -> Tensor:
        return self.ids[:, :-1]

    @property
    def targets(self) -> Tensor:
        return self.ids[:, 1:]

    @property
    def target_mask(self) -> Tensor:
        """``[B, L-1]`` True where the target is a real token (words and ``</s>``)."""
        steps = torch.arange(self.ids.shape[1] - 1, device=self.ids.device)
        return steps.unsqueeze(0) < (self.lengths - 1).unsqueeze(1)

    def num_tokens(self) -> Tensor:
        """Predicted tokens per sentence: its words plus ``</s>`` (``<s>`` is given, not
        predicted)."""
        return self.lengths - 1


@dataclass
class TextSplit:
    """Padded token ids ``[N, L_max]`` with per-sentence ``lengths [N]`` (``<s>``/``</s>``
    included). ``labels`` is kept for the Split protocol; the text corpora here are unlabelled."""

    ids: Tensor
    lengths: Tensor
    pad_id: int = 0
    labels: Tensor | None = None
    width_multiple: int = 1  # batch widths are rounded up to a multiple of this

    def __post_init__(self) -> None:
        # Batch planning (sorting, trimming) happens on the host so drawing a batch needs no
        # device-to-host sync beyond one per epoch.
        self._lengths_cpu = self.lengths.cpu()

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def total_tokens(self) -> int:
        """Predicted tokens in the split (words + ``</s>``), the perplexity denominator."""
        return int((self._lengths_cpu - 1).sum())

    def to(self, device: torch.device | str) -> TextSplit:
        labels = None if self.labels is None else self.labels.to(device)
        return TextSplit(
            self.ids.to(device), self.lengths.to(device), self.pad_id, labels, self.width_multiple
        )

    def subset(self, n: int, seed: int = SUBSET_SEED) -> TextSplit:
        """``n`` sentences drawn at random (:func:`bench.data.subset_indices`): a corpus is
        stored article by article, so a prefix would be a few articles."""
        idx = subset_indices(len(self), n, self.labels, seed).to(self.ids.device)
        labels = None if self.labels is None else self.labels[idx]
        return TextSplit(self.ids[idx], self.lengths[idx], self.pad_id, labels, self.width_multiple)

    def padded_to(self, multiple: int) -> TextSplit:
        """The same split with every batch padded to a width that is a multiple of
        ``multiple``: CUDA graphs record one graph per batch shape, and sentence lengths would
        otherwise give one per length. Padding is masked, so losses are unchanged."""
        extra = -self.ids.shape[1] % multiple
        ids = torch.nn.functional.pad(self.ids, (0, extra), value=self.pad_id)
        return TextSplit(ids, self.lengths, self.pad_id, self.labels, multiple)

    def _order(self, shuffle: bool, generator: torch.Generator | None) -> Tensor:
        """Length-sorted example order on the host; ties broken at random when shuffling."""
        if not shuffle:
            return torch.argsort(self._lengths_cpu, stable=True)
        device = generator.device if generator is not None else self.ids.device
        perm = torch.randperm(len(self), generator=generator, device=device).cpu()
        return perm[torch.argsort(self._lengths_cpu[perm], stable=True)]

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[TokenBatch, Tensor | None]]:
        order = self._order(shuffle, generator)
        chunks = list(order.split(batch_size))
        if shuffle:
            device = generator.device if generator is not None else self.ids.device
            batch_order = torch.randperm(len(chunks), generator=generator, device=device).tolist()
        else:
            batch_order = range(len(chunks))
        for b in batch_order:
            idx_cpu = chunks[b]
            width = int(self._lengths_cpu[idx_cpu].max())
            width += -width % self.width_multiple
            idx = idx_cpu.to(self.ids.device, non_blocking=True)
            batch = TokenBatch(self.ids[idx, :width], self.lengths[idx], self.pad_id)
            yield batch, (None if self.labels is None else self.labels[idx])
