"""``bench.testing``: contract checks and tiny data for plugin tests; also a pytest plugin.

Installing collapse-bench registers this module with pytest (entry point ``pytest11``), so
the fixtures below are available in any test suite without an import::

    from bench.testing import check_model

    def test_my_model(bench_image_data, bench_image_batch):
        check_model(build_my_model(bench_image_data.info), bench_image_batch)

Checks: :func:`check_model`, :func:`check_objective`, :func:`check_method`,
:func:`check_metric`, :func:`check_dataset`; each raises :class:`ContractCheckError` listing
every violation (``ContractError``, its old name, still imports with a DeprecationWarning).
Fixtures: ``bench_image_data``, ``bench_text_data``, ``bench_image_batch``,
``bench_text_batch``, ``bench_registries``.
"""

from bench.errors import deprecated_aliases
from bench.testing.checks import (
    ContractCheckError,
    HostReads,
    Violation,
    check_dataset,
    check_metric,
    check_model,
    check_objective,
)
from bench.testing.fixtures import (
    bench_image_batch,
    bench_image_data,
    bench_registries,
    bench_text_batch,
    bench_text_data,
    first_batch,
    tiny_image_data,
    tiny_text_data,
)
from bench.testing.methods import check_method

__all__ = [
    "ContractCheckError",
    "HostReads",
    "Violation",
    "bench_image_batch",
    "bench_image_data",
    "bench_registries",
    "bench_text_batch",
    "bench_text_data",
    "check_dataset",
    "check_method",
    "check_metric",
    "check_model",
    "check_objective",
    "first_batch",
    "tiny_image_data",
    "tiny_text_data",
]

# The old name still imports, with a DeprecationWarning naming the new one.
__getattr__ = deprecated_aliases(__name__, {"ContractError": "ContractCheckError"}, globals())
