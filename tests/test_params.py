"""Param validity: type from the default, inclusive bounds (minimum, maximum) separate from
the search range, choices; one-line ConfigError naming where the value came from."""

from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.specs import Param, resolve_params

LATENT = Param(20, 2, 64, step=1, minimum=1)


@pytest.mark.parametrize(
    ("param", "value", "needle"),
    [
        (LATENT, 8.5, "expected int, got 8.5"),
        (LATENT, "eight", "expected int, got 'eight'"),
        (LATENT, True, "expected int, got True"),
        (LATENT, 0, "must be >= 1, got 0"),
        (Param(False, choices=(False, True)), 1, "expected bool, got 1"),
        (Param(3, choices=(3, 5)), 4, "4 is not one of 3, 5"),
        (Param(0.5, 0.0, 0.8, minimum=0.0, maximum=1.0), 1.5, "must be <= 1, got 1.5"),
        (Param(0.5, maximum=1.0), 2, "must be <= 1, got 2.0"),
        (Param("adam"), 3, "expected str, got 3"),
        (Param(None, 1, 1000, step=1, minimum=1), 2.5, "expected int, got 2.5"),
    ],
)
def test_bad_values_are_one_line_config_errors(param, value, needle):
    with pytest.raises(ConfigError) as info:
        param.check(value, "model 'm': p")
    message = str(info.value)
    assert message.startswith("model 'm': p: ")
    assert needle in message
    assert "\n" not in message


def test_good_values_pass_and_floats_are_normalised():
    assert LATENT.check(100, "x") == 100  # above the tuning range, inside the bounds
    assert Param(10.0).check(2, "x") == 2.0
    assert isinstance(Param(10.0).check(2, "x"), float)
    assert Param(None, 1, 1000, step=1).check(None, "x") is None
    assert Param(200, 1, 1000, step=1).check(None, "x") is None  # None: not set
    assert Param(None).check([9, 7], "x") == [9, 7]  # no type to infer: anything goes
    assert Param(False, choices=(False, True)).check(True, "x") is True


def test_resolve_params_checks_every_given_value():
    spec = {"latent_dim": LATENT, "hidden": Param(300, minimum=1)}
    assert resolve_params(spec, {"hidden": 8}, "model 'm'") == {"latent_dim": 20, "hidden": 8}
    with pytest.raises(ConfigError, match=r"model 'm': latent_dim: must be >= 1, got 0"):
        resolve_params(spec, {"latent_dim": 0}, "model 'm'")
