"""Secrets never printed or written: the one redaction every message, log, record, holder file
and saved command line goes through.

A storage URL may carry a password (``postgresql://user:password@host/db``,
``...?password=...``), and so may a libpq key=value string (``host=h password=p``). What
bench prints or writes is read by other people (a shared results folder, a pasted log), so
each of those forms is replaced by ``***`` before it leaves the process, and so is every
other occurrence of a password found that way (a driver may repeat it in its own words).
``PGPASSWORD`` or ``~/.pgpass`` keep a password off the command line in the first place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

HIDDEN = "***"
# Where a command line had to hide a password: how to keep it off the command line.
PASSWORD_HINT = "PGPASSWORD or ~/.pgpass keep it off the command line"

# libpq's secret keywords (password, sslpassword) and the spellings other drivers and services
# use for the same thing. ``sslkey``, ``passfile`` and the like name files: not secret.
SECRET_KEYS = (
    "password",
    "sslpassword",
    "passwd",
    "pwd",
    "secret",
    "secret_key",
    "access_key",
    "access_token",
    "token",
    "api_key",
    "apikey",
)
_KEYS = "|".join(sorted(SECRET_KEYS, key=len, reverse=True))
_VALUE = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\"]+"

# scheme://user:password@host (the password may hold anything but '@' and blanks)
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]*)@")
# password=... in a URL's query (?password=, &password=) or a key=value string
KEY_VALUE = re.compile(rf"(?i)(?P<head>(?<![\w-])(?:{_KEYS})\s*=\s*)(?P<secret>{_VALUE})")
# 'password': '...' in a dict or JSON text (an error message quoting its connection settings)
MAPPING = re.compile(rf"(?i)(?P<head>([\"'])(?:{_KEYS})\2\s*:\s*)(?P<secret>{_VALUE})")
PATTERNS = (URL_PASSWORD, KEY_VALUE, MAPPING)
# The same in one command-line argument, which holds one URL at most: there the password may
# hold blanks too.
_ARG_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@]*@")


def secrets_in(text: str) -> set[str]:
    """The secret values ``text`` spells out in one of the forms above (quotes removed, and
    percent-decoded too: a driver repeats the decoded password)."""
    found: set[str] = set()
    for pattern in PATTERNS:
        for match in pattern.finditer(text):
            value = match["secret"]
            if value[:1] in "'\"" and value[-1:] == value[:1] and len(value) > 1:
                value = value[1:-1]
            found |= {value, unquote(value)}
    return {v for v in found if v and v != HIDDEN}


def redact(text: str, *sources: str) -> str:
    """``text`` fit to print or write: every password in it replaced by ``***``, and every
    occurrence of a password that ``sources`` spell out (the storage URL an error message
    came from, whatever the driver made of it).

    ``postgresql://u:pw@h/db?sslpassword=k`` becomes ``postgresql://u:***@h/db?sslpassword=***``.
    """
    values = secrets_in(text)
    for source in sources:
        values |= secrets_in(source)
    for pattern in PATTERNS:
        text = pattern.sub(_hidden, text)
    # Longest first: a password that holds another is hidden whole.
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, HIDDEN)
    return text


def _hidden(match: re.Match[str]) -> str:
    end = "@" if match.re is URL_PASSWORD else ""
    return f"{match['head']}{HIDDEN}{end}"


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line's arguments, each through :func:`redact` (before quoting). One argument
    is one URL at most, so there its password may hold blanks too."""
    return [redact(_ARG_URL_PASSWORD.sub(rf"\g<head>{HIDDEN}@", arg)) for arg in argv]


def has_secret(text: str) -> bool:
    """Whether ``text`` spells out a password (it is never sent or recorded then)."""
    return redact(text) != text
