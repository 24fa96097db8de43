"""Options that a plugin adds to a command it did not define, such as ``--report`` and
``--log-to`` on ``bench run`` (through ``register_commands``). Torch-free, as every module the
command line imports."""

from __future__ import annotations

import click


def add_option(cli: click.Group, command: str, option: click.Option) -> None:
    """Give ``cli``'s ``command`` one more option, once: ``register_commands`` may run more
    than once in a process (each ``bench`` call in a test, a reloaded plugin host), and a
    second copy of an option would shadow the first. Nothing happens when the command is
    absent."""
    target = cli.commands.get(command)
    if target is not None and not any(p.name == option.name for p in target.params):
        target.params.append(option)
