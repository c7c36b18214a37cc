"""The service's start-up check: is the database at the revision this release expects, or past it?

It asks the binary (``identity-migrate status --json``, and ``list --json`` when it must know
the ancestry of a revision), so the answer follows the binary's own revision graph and URL
rules. The database URL goes to the binary through its environment (``DATABASE_URL``), never
through its arguments, which any user of the machine can read in ``ps``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._find_bin import find_bin

#: The database holds the expected revision as a current revision.
AT = "at"
#: The expected revision is applied and the database went further (a later release migrated
#: it): ready, since a rolling deploy must not take down the pods of the previous release.
AHEAD = "ahead"
#: The database is at a revision this binary does not know: most likely a newer release of
#: the service migrated it (the far side of a rolling deploy). Ready unless the caller says
#: otherwise (``accept_unknown=False``).
UNKNOWN = "unknown"
#: The expected revision is not applied yet: the migration has not run (or not finished).
BEHIND = "behind"

# What the binary writes when the database's version table names a revision it does not know
# (migrate-core's graph). The helper and the binary ship in the same wheel, and the wheel test
# pins this text.
_UNKNOWN_REVISION_MARK = "which this binary does not know"


class SchemaCheckError(RuntimeError):
    """The check has no answer: the binary could not read the database (unreachable server,
    refused login, bad URL or configuration), gave no answer within the timeout, or does not
    know the expected revision.

    Attributes:
        exit_code: the binary's exit code (1: the work failed, 2: bad input), or None when the
            binary did not fail by itself (stopped at the timeout, an unknown or ambiguous
            expected revision, output that is not JSON).
    """

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class SchemaState:
    """Where the database is, measured against the revision the service expects."""

    #: True when the service may start: ``state`` is ``at`` or ``ahead`` (or ``unknown``, unless
    #: the check was asked not to accept it).
    ready: bool
    #: One of ``at``, ``ahead``, ``unknown``, ``behind``.
    state: str
    #: The revision the service expects, as given (``head`` or an id or prefix).
    expected: str
    #: That revision's full id, when the binary knows it (for ``head``: the head, or the heads
    #: joined by ``", "``).
    expected_revision: str | None
    #: The database's current revision(s); empty at base, or when ``state`` is ``unknown``.
    current: tuple[str, ...]
    #: The database as the binary shows it, password redacted (None when it refused to read it).
    database: str | None
    #: One line for the service's log.
    detail: str


def check_schema(
    expected: str = "head",
    *,
    database_url: str | None = None,
    accept_unknown: bool = True,
    timeout: float = 30.0,
    binary: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> SchemaState:
    """Says whether the database is at ``expected`` or a descendant of it.

    Args:
        expected: ``head`` (the head of the binary shipped with this package: the schema this
            release of the service was built for), or a revision id or unique prefix of at least
            4 characters, as the binary accepts them.
        database_url: the database, as the service configures it (``postgresql+asyncpg://`` and
            ``sqlite+aiosqlite://`` URLs are understood). Passed in the child's environment as
            ``DATABASE_URL``. When None, the binary resolves the database as it always does:
            ``DATABASE_URL`` of ``env``, then ``identity-migrate.toml`` in ``cwd``.
        accept_unknown: whether a database at a revision this binary does not know (state
            ``unknown``: most likely migrated by a newer release) counts as ready.
        timeout: seconds each call of the binary may take before it is killed.
        binary: the ``identity-migrate`` binary to run; :func:`find_bin` by default.
        env: the child's environment; ``os.environ`` by default.
        cwd: the child's working directory; the current one by default.

    Returns:
        The :class:`SchemaState`; ``ready`` is the answer.

    Raises:
        SchemaCheckError: the binary could not read the database (its one-line error is the
            message), or ``expected`` is not a revision this binary knows.
    """
    runner = _Runner(binary or find_bin(), database_url, timeout, env, cwd)
    status = runner.json("status")
    if status is None:
        return _unknown(expected, accept_unknown)
    current = tuple(str(c["revision"]) for c in status["current"])
    database = str(status["database"])

    def state(name: str, revision: str | None, detail: str) -> SchemaState:
        return SchemaState(
            ready=name in (AT, AHEAD),
            state=name,
            expected=expected,
            expected_revision=revision,
            current=current,
            database=database,
            detail=detail,
        )

    where = ", ".join(current) if current else "base"
    if expected in ("head", "heads"):
        heads = ", ".join(status["heads"])
        if status["at_head"]:
            return state(AT, heads, f"at head ({heads})")
        return state(BEHIND, heads, f"at {where}; {status['pending']} revision(s) pending")
    if expected in current:
        return state(AT, expected, f"at {expected}")

    # Is the expected revision an ancestor of a current one? `list --json` marks every revision
    # of the graph `applied` when it is a current revision or one of their ancestors.
    revisions = runner.json("list")
    if revisions is None:  # Migrated by a newer release between the two calls.
        return _unknown(expected, accept_unknown)
    match = _resolve(expected, revisions)
    if match is None:
        raise SchemaCheckError(
            f"revision {expected!r} is not one this identity-migrate knows: the service and "
            f"the installed identity-migrate disagree",
            None,
        )
    if match["current"]:
        return state(AT, match["revision"], f"at {match['revision']}")
    if match["applied"]:
        return state(AHEAD, match["revision"], f"at {where}, past {match['revision']}")
    return state(BEHIND, match["revision"], f"at {where}; {match['revision']} not applied yet")


def _unknown(expected: str, accept_unknown: bool) -> SchemaState:
    return SchemaState(
        ready=accept_unknown,
        state=UNKNOWN,
        expected=expected,
        expected_revision=None,
        current=(),
        database=None,
        detail="the database is at a revision this identity-migrate does not know (probably "
        "migrated by a newer release)" + ("" if accept_unknown else "; not accepted"),
    )


def _resolve(expected: str, revisions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The revision ``expected`` names: its full id, or a unique prefix of 4 or more."""
    exact = [r for r in revisions if r["revision"] == expected]
    if exact:
        return exact[0]
    if len(expected) < 4:
        return None
    found = [r for r in revisions if str(r["revision"]).startswith(expected)]
    if len(found) > 1:
        ids = ", ".join(str(r["revision"]) for r in found)
        raise SchemaCheckError(f"revision prefix {expected!r} is ambiguous: {ids}", None)
    return found[0] if found else None


class _Runner:
    """Runs the binary's reading commands with the URL in the environment."""

    def __init__(
        self,
        binary: str,
        database_url: str | None,
        timeout: float,
        env: Mapping[str, str] | None,
        cwd: str | None,
    ) -> None:
        self.binary = binary
        self.timeout = timeout
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        if database_url is not None:
            self.env["DATABASE_URL"] = database_url

    def json(self, command: str) -> Any:
        """The parsed JSON of ``<command> --json``; None when the database is at a revision the
        binary does not know."""
        args = [self.binary, "--quiet", command, "--json"]
        try:
            done = subprocess.run(
                args,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SchemaCheckError(
                f"identity-migrate {command} gave no answer within {self.timeout:g} s", None
            ) from None
        if done.returncode != 0:
            error = done.stderr.strip().splitlines()
            line = error[-1] if error else f"exit code {done.returncode}, nothing on stderr"
            if _UNKNOWN_REVISION_MARK in line:
                return None
            raise SchemaCheckError(line.removeprefix("error: "), done.returncode)
        try:
            return json.loads(done.stdout)
        except ValueError as e:
            raise SchemaCheckError(
                f"identity-migrate {command} --json printed something that is not JSON: {e}",
                None,
            ) from None


def wait_for_schema(
    expected: str = "head",
    *,
    database_url: str | None = None,
    timeout: float = 300.0,
    binary: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> SchemaState:
    """Waits until the database is at ``expected`` or a descendant of it, at most ``timeout``
    seconds, with ``identity-migrate wait`` (one cheap poll a second, never the migration lock).

    The same answer as :func:`check_schema` (a database at a revision this binary does not
    know counts as ready), but it blocks: for a service that starts before its migration Job
    has finished and has no init container to wait in.

    Returns:
        The :class:`SchemaState`: ready, or ``behind`` (not ready) when ``timeout`` passed first.

    Raises:
        SchemaCheckError: no connection to the database succeeded within ``timeout`` (exit code
            1), or bad input such as an unknown ``expected`` revision (exit code 2).
    """
    runner = _Runner(binary or find_bin(), database_url, timeout, env, cwd)
    args = [runner.binary, "--quiet", "wait", "--for", expected, "--timeout"]
    args += [str(max(1, int(timeout + 0.999))), "--json"]
    try:
        done = subprocess.run(
            args,
            env=runner.env,
            cwd=runner.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            # The binary stops itself at its timeout; this only guards against a hung child.
            timeout=timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SchemaCheckError(
            f"identity-migrate wait gave no answer within {timeout + 30:g} s", None
        ) from None
    if done.returncode not in (0, 5):
        error = done.stderr.strip().splitlines()
        line = error[-1] if error else f"exit code {done.returncode}, nothing on stderr"
        raise SchemaCheckError(line.removeprefix("error: "), done.returncode)
    try:
        answer = json.loads(done.stdout)
    except ValueError as e:
        raise SchemaCheckError(
            f"identity-migrate wait --json printed something that is not JSON: {e}", None
        ) from None
    state = str(answer["state"])
    current = () if state == UNKNOWN else tuple(str(c) for c in answer["current"])
    where = ", ".join(current) if current else "base"
    awaited = ", ".join(str(r) for r in answer["for"])
    details = {
        AT: f"at {awaited}",
        AHEAD: f"at {where}, past {awaited}",
        UNKNOWN: "the database is at a revision this identity-migrate does not know (probably "
        "migrated by a newer release)",
        BEHIND: f"still at {where} after {answer['waited_s']:g} s; {awaited} not applied yet",
    }
    return SchemaState(
        ready=bool(answer["ready"]),
        state=state,
        expected=expected,
        expected_revision=awaited,
        current=current,
        database=str(answer["database"]),
        detail=details.get(state, state),
    )
