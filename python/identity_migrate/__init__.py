"""identity-migrate, the identity service's database migration tool, for Python.

Installing this package puts the ``identity-migrate`` binary on the ``PATH`` of the virtualenv;
the binary carries every revision of the schema. This package adds what a Python service needs
around it, with the standard library only:

- :func:`find_bin`: the path of the binary installed with this package;
- :func:`check_schema`: the service's start-up check, "is the database at the revision this
  release expects, or past it?";
- :func:`wait_for_schema`: the same question, waiting for the answer to be yes (``identity-migrate
  wait``), for a service without an init container to wait in;
- ``python -m identity_migrate ARGS``: the binary itself, for images without the venv's ``bin``
  on ``PATH``.
"""

from ._find_bin import BinaryNotFound, find_bin
from ._schema import (
    AHEAD,
    AT,
    BEHIND,
    UNKNOWN,
    SchemaCheckError,
    SchemaState,
    check_schema,
    wait_for_schema,
)

__all__ = [
    "AHEAD",
    "AT",
    "BEHIND",
    "UNKNOWN",
    "BinaryNotFound",
    "SchemaCheckError",
    "SchemaState",
    "check_schema",
    "find_bin",
    "wait_for_schema",
]
