"""Shared fixtures."""

import subprocess
import sys

import pytest

import honker


@pytest.fixture
def db(tmp_path):
    with honker.open(str(tmp_path / "app.db")) as d:
        yield d


class WriteLockHolder:
    """Another process holding the file's write lock until ``release()``.
    (Another process: two SQLite copies in one process do not see each
    other's locks.)"""

    def __init__(self, path: str) -> None:
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import sqlite3, sys\n"
                    "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                    "c.execute('BEGIN IMMEDIATE')\n"
                    "print('locked', flush=True)\n"
                    "sys.stdin.readline()\n"
                    "c.execute('COMMIT')\n"
                ),
                path,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        assert self._proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write("go\n")
        self._proc.stdin.flush()

    def wait(self) -> int:
        return self._proc.wait(timeout=10)
