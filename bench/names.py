"""The one pattern for names that become file and folder names, and the checks that keep every
output path inside its root.

Suite, scale, group, data set, model, objective and metric names end up in paths: results go to
``<results>/<suite>/<scale>/<group>__<dataset>__<model>__<objective>__s<seed>``, leaderboards
to ``<leaderboards>/<suite>.<scale>.md``. A suite file (and a results folder someone sent)
is untrusted input, so a name is checked before it reaches a path: letters, digits, ``.``,
``_`` and ``-``, starting with a letter or digit (so never ``.`` or ``..``), at most
:data:`NAME_MAX` characters (so a run folder's name, five names long, stays under the 255
bytes a file name may have). Run and results folders that are symbolic links are refused,
never followed.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

from bench.errors import ConfigError

NAME_MAX = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_RULE = (
    f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {NAME_MAX} "
    "characters"
)


def shown(value: Any, limit: int = 40) -> str:
    """``repr`` of a value, cut to ``limit`` characters: a 300-character name or a NUL byte
    stays one short, readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def is_name(value: Any, limit: int = NAME_MAX) -> bool:
    return (
        isinstance(value, str) and len(value) <= limit and NAME_PATTERN.fullmatch(value) is not None
    )


def check_name(value: Any, where: str, limit: int = NAME_MAX) -> str:
    """``value`` if it is a valid name, else a one-line ConfigError naming ``where``.
    ``limit``: for names the harness derives from one (``<suite>-tuned``)."""
    if not is_name(value, limit):
        raise ConfigError(f"{where}: {shown(value)} is not a valid name ({NAME_RULE})")
    return value


def check_inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, which must lie under ``root`` resolved (a link or ``..`` that leads
    elsewhere is refused); a ConfigError naming both otherwise."""
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        raise ConfigError(f"{what} {path} is outside {root} (it resolves to {resolved})")
    return resolved


def check_no_links(root: Path, path: Path, what: str) -> None:
    """No folder from ``root`` (excluded: a results root may be a link the user made) down to
    ``path`` (included) is a symbolic link: results are never written through one."""
    for folder in [path, *path.parents]:
        if folder == root or folder in root.parents:
            break
        if folder.is_symlink():
            raise ConfigError(
                f"{what} {folder} is a symbolic link (to {folder.readlink()}); results are "
                "never written through links: replace it with a folder"
            )


def check_no_links_in(folder: Path, what: str) -> None:
    """``folder`` holds no symbolic link (a run folder that would write through it)."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in folder.iterdir():
        if entry.is_symlink():
            raise ConfigError(
                f"{what} {folder} holds a symbolic link, {entry.name} (to {entry.readlink()}); "
                "results are never written through links: remove it"
            )


def path_error(exc: BaseException) -> str | None:
    """One line for a path no file system takes, from a command line, an environment variable
    or a suite file: a name over 255 bytes (``ENAMETOOLONG``) or a NUL byte; None for any
    other error."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:
            where = f" {shown(os.fsdecode(e.filename), 60)}" if e.filename is not None else ""
            return (
                f"path{where} is too long: a file or folder name has at most 255 bytes, a path 4096"
            )
        if isinstance(e, ValueError) and "null byte" in str(e):
            return "a path holds a NUL byte (\\x00); no file name can"
    return None


def check_path(value: str | os.PathLike[str] | None, what: str) -> None:
    """``value`` (a folder or file the user gave) is one a file system can take; a one-line
    ConfigError naming ``what`` otherwise."""
    if value is None:
        return
    text = os.fspath(value)
    if "\0" in text:
        raise ConfigError(f"{what}: {shown(text, 60)} holds a NUL byte (\\x00); no file name can")
    too_long = [part for part in Path(text).parts if len(os.fsencode(part)) > 255]
    if too_long or len(os.fsencode(text)) > 4096:
        raise ConfigError(
            f"{what}: {shown(text, 60)} is too long: a file or folder name has at most 255 "
            "bytes, a path 4096"
        )
