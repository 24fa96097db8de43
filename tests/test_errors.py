"""The exceptions: each name says what it is for, and old names still import with a warning."""

from __future__ import annotations

import importlib

import pytest

import bench.errors
import bench.runner
import bench.runner.step
import bench.testing


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("bench.errors", "ContractError", "ModelContractError"),
        ("bench.testing", "ContractError", "ContractCheckError"),
    ],
)
def test_renamed_exceptions_still_import_with_a_deprecation_warning(module, old, new):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated; use .*{new}"):
        alias = getattr(mod, old)
    assert alias is getattr(mod, new)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchError'"):
        mod.NoSuchError  # noqa: B018 (the attribute access is the test)


def test_the_runners_contract_error_is_a_user_error_and_the_checks_one_an_assertion():
    # The CLI prints one line and exits 2 for a BenchError; pytest fails a test on an
    # AssertionError: the two are different classes for those two readers.
    assert issubclass(bench.errors.ModelContractError, bench.errors.BenchError)
    assert issubclass(bench.testing.ContractCheckError, AssertionError)
    assert not issubclass(bench.testing.ContractCheckError, bench.errors.BenchError)


def test_diverged_error_lives_in_errors_and_the_runner_still_exports_it():
    assert bench.runner.DivergedError is bench.errors.DivergedError
    assert bench.runner.step.DivergedError is bench.errors.DivergedError
