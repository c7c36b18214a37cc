"""Where pip put the ``identity-migrate`` binary of this package."""

from __future__ import annotations

import os
import sys
import sysconfig
from fnmatch import fnmatch

_PACKAGE = "identity_migrate"


class BinaryNotFound(FileNotFoundError):
    """The ``identity-migrate`` binary is in none of the places pip installs it to."""


def find_bin() -> str:
    """Returns the path of the ``identity-migrate`` binary installed with this package.

    The wheel carries the binary as a script, which pip puts in the ``bin`` (``Scripts`` on
    Windows) directory of whatever it installed into. The places are tried in this order: the
    running interpreter's environment (a virtualenv), the base installation, the user scheme
    (``pip install --user``: ``~/.local/bin``), and the layouts of ``pip install --prefix`` and
    ``pip install --target``. ``PATH`` is not searched on purpose: a binary found there may be
    of another version than this package, and its revisions (which are compiled into it) would
    then not be the ones the service was released with.

    Raises:
        BinaryNotFound: no candidate directory holds the binary; the message lists them all.
    """
    name = "identity-migrate" + (sysconfig.get_config_var("EXE") or "")
    tried: list[str] = []
    for directory in _candidate_dirs():
        if not directory or directory in tried:
            continue
        tried.append(directory)
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise BinaryNotFound(
        f"{name} is not installed beside the {_PACKAGE} package; looked in: " + ", ".join(tried)
    )


def _candidate_dirs() -> list[str | None]:
    package_dir = os.path.dirname(os.path.abspath(__file__))
    return [
        sysconfig.get_path("scripts"),
        sysconfig.get_path("scripts", vars={"base": sys.base_prefix}),
        sysconfig.get_path("scripts", scheme=_user_scheme()),
        # pip install --prefix P: the package is P/lib/pythonX.Y/site-packages/identity_migrate.
        _join(_strip_suffix(package_dir, f"lib/python*/site-packages/{_PACKAGE}"), "bin"),
        # pip install --target T: the package is T/identity_migrate, the binary in T/bin.
        _join(_strip_suffix(package_dir, _PACKAGE), "bin"),
    ]


def _user_scheme() -> str:
    if sys.version_info >= (3, 10):
        return sysconfig.get_preferred_scheme("user")
    if os.name == "nt":
        return "nt_user"
    if sys.platform == "darwin" and getattr(sys, "_framework", None):
        return "osx_framework_user"
    return "posix_user"


def _strip_suffix(path: str, pattern: str) -> str | None:
    """``path`` without its trailing components matching ``pattern`` (``/``-separated, with
    ``*`` wildcards), or None when they do not match."""
    parts = path.split(os.sep)
    suffix = pattern.split("/")
    if len(parts) <= len(suffix):
        return None
    tail = parts[len(parts) - len(suffix) :]
    if not all(fnmatch(part, wanted) for part, wanted in zip(tail, suffix)):
        return None
    return os.sep.join(parts[: len(parts) - len(suffix)])


def _join(directory: str | None, name: str) -> str | None:
    return os.path.join(directory, name) if directory else None
