"""``--ray [ADDRESS]``, ``--gpus-per-cell`` and ``--cpus-per-cell``: the options of every
command that can run on Ray (``bench run``, ``bench tune``).

Apart from the runner (:mod:`bench.runner.ray` checks them and runs the tasks) and free of
torch, so that the commands that take them are defined, and ``bench --help`` lists them, without
importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

LOCAL = "local"  # --ray with no address: start Ray here


def ray_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--ray [ADDRESS]``, ``--gpus-per-cell`` and ``--cpus-per-cell``, for any command."""
    for option in reversed(
        (
            click.option(
                "--ray",
                "ray_address",
                is_flag=False,
                flag_value=LOCAL,
                default=None,
                metavar="[ADDRESS]",
                help="run on Ray: a new local instance, or ADDRESS (auto: the running cluster)",
            ),
            click.option(
                "--gpus-per-cell",
                type=float,
                default=None,
                help="with --ray: GPUs each cell holds, 0.25 packs 4 per GPU [1 if any]",
            ),
            click.option(
                "--cpus-per-cell", type=float, default=1.0, show_default=True, help="with --ray"
            ),
        )
    ):
        command = option(command)
    return command
