"""Counting the reads of a tensor's value on the host, which on a GPU stall the device queue."""

from __future__ import annotations

import collections
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode


class HostReads(TorchDispatchMode):
    """Counts what reads a tensor's value on the host: ``.item()``, ``float()``, ``bool()``
    (a Python ``if`` on a tensor), ``.tolist()``, ``.numpy()`` and ``.cpu()``. On a GPU each
    is a synchronisation that stalls the device queue; on the CPU it is counted all the same,
    so the check holds wherever the test runs.

    ``with HostReads() as reads: ...`` then ``reads.counts`` maps each read to its count.
    """

    _READ_OPS = ("_local_scalar_dense", "item", "is_nonzero")
    _READ_METHODS = ("tolist", "numpy", "cpu")

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self._saved: dict[str, Any] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.startswith(self._READ_OPS):
            self.counts[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostReads:
        for name in self._READ_METHODS:
            original = getattr(Tensor, name)
            self._saved[name] = original

            def counted(tensor: Tensor, *a: Any, _name: str = name, _f: Any = original, **k: Any):
                self.counts[_name] += 1
                return _f(tensor, *a, **k)

            setattr(Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for name, original in self._saved.items():
            setattr(Tensor, name, original)
        self._saved.clear()
        return super().__exit__(*exc)
