"""``bench new-plugin NAME``: write a ready plugin package, the way a third-party author starts.

The package (``bench-NAME/``) registers a model, an objective, a metric and a data set through
the ``bench`` entry-point group, with tests that use :mod:`bench.testing` and a smoke suite in
TOML. Its files are rendered from ``template/``: ``{{key}}`` placeholders are replaced, the
``package`` folder is renamed to the Python package and ``suite.toml`` to ``NAME.toml``.

A core built-in plugin: the command is added through ``register_commands`` like any plugin's.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import click

from bench.errors import ConfigError
from bench.hookspecs import hookimpl

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
TEMPLATE_SUFFIX = ".tmpl"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def names(name: str) -> dict[str, str]:
    """The placeholders for plugin ``name``: ``mymodels`` gives distribution
    ``bench-mymodels``, package ``bench_mymodels`` and items ``mymodels-vae``, ``mymodels_bpd``."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"plugin name {name!r}: use lower-case letters and digits, words joined by - or _, "
            "starting with a letter (e.g. mymodels, gated-skip)"
        )
    from bench import __version__

    ident = name.replace("-", "_")
    return {
        "name": name,
        "name_id": ident,
        "package": f"bench_{ident}",
        "dist": f"bench-{name.replace('_', '-')}",
        "bench_version": __version__,
    }


def render(text: str, values: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value")
        return values[key]

    return PLACEHOLDER.sub(sub, text)


def _target_path(relative: str, values: dict[str, str]) -> str:
    parts = relative.removesuffix(TEMPLATE_SUFFIX).split("/")
    if parts[0] == "package":
        parts[0] = values["package"]
    if parts == ["suite.toml"]:
        parts = [f"{values['name']}.toml"]
    return "/".join(parts)


def _template_files(root: resources.abc.Traversable, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            out += _template_files(entry, f"{rel}/")
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            out.append((rel, entry.read_text(encoding="utf-8")))
    return out


def generate(name: str, parent: Path) -> tuple[Path, list[str]]:
    """Write the package for plugin ``name`` into ``parent / "bench-NAME"``; returns that folder
    and the files written (relative paths). The folder appears whole or not at all."""
    values = names(name)
    target = parent / values["dist"]
    if target.exists():
        raise ConfigError(f"{target} already exists; choose another name or --dir")
    parent.mkdir(parents=True, exist_ok=True)
    written = []
    staging = Path(tempfile.mkdtemp(prefix=f".{values['dist']}-", dir=parent))
    try:
        for rel, text in _template_files(resources.files(__package__) / "template"):
            path = staging / _target_path(rel, values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(text, values), encoding="utf-8")
            written.append(_target_path(rel, values))
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target, written


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="new-plugin")
    @click.argument("name")
    @click.option(
        "--dir",
        "parent",
        default=".",
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="folder to create bench-NAME/ in",
    )
    def new_plugin(name: str, parent: Path) -> None:
        """Write a ready plugin package bench-NAME/: a model, an objective, a metric, a data
        set, tests and a smoke suite."""
        target, written = generate(name, parent)
        values = names(name)
        click.echo(f"wrote {target}/ ({len(written)} files):")
        for rel in written:
            click.echo(f"  {rel}")
        click.echo(
            "next:\n"
            f"  pip install -e {target}\n"
            f"  pytest {target}\n"
            f"  bench run --suite {target / (values['name'] + '.toml')}"
        )
