"""``bench throughput``: training and evaluation speed on the current device, written to JSON.

It measures, for every registered model (or ``--models``), train and eval examples/s per
configuration of bf16 autocast and ``torch.compile`` with FLOPs and TFLOP/s, the data pipeline
alone, and batched IW-NLL against a per-example reference; and once, the harness overhead
(runner against a plain PyTorch loop, target >= 0.97) and ``bench run --jobs N`` against
``--jobs 1``. Method and figures: ``docs/throughput.md``.

- ``workloads``: each model's data set, parameters and batch sizes; the run's settings.
- ``budget``: ``--budget-s``, the time left and what parts are expected to cost.
- ``presets``: ``--preset NAME``, named sets of option values (``gpu-check``).
- ``measure``: timing with warm-up and synchronisation, FLOPs; train, eval, data rates.
- ``iw``: IW-NLL batched against the per-example (Pythae-style) reference.
- ``reference``: the plain hand-written loop; harness overhead by time and by ops per step.
- ``jobs``: a suite run with ``--jobs N`` against ``--jobs 1``.
- ``report``: the machine, the parts in order of what they tell, summary lines, the JSON file.
- ``command``: the click command, registered like a plugin's through ``register_commands``.

The measuring functions are importable from their modules, so the pytest-benchmark suite
(``tests/benchmarks``) reuses them.
"""

from bench.throughput.command import register_commands

__all__ = ["register_commands"]
