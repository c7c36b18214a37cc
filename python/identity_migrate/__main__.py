"""``python -m identity_migrate ARGS``: runs the binary with ARGS, its exit code the process's."""

from __future__ import annotations

import os
import subprocess
import sys

from ._find_bin import BinaryNotFound, find_bin


def main() -> None:
    """Replaces this process with the binary (POSIX), or runs it and exits with its code."""
    try:
        binary = find_bin()
    except BinaryNotFound as e:
        sys.exit(f"error: {e}")
    argv = [binary, *sys.argv[1:]]
    if sys.platform == "win32":
        sys.exit(subprocess.call(argv))
    # exec: signals, the terminal and the exit code are the binary's own, with no Python
    # process left waiting in between.
    os.execv(binary, argv)


if __name__ == "__main__":
    main()
