"""honker.load_extension: honker's SQL functions in a stdlib sqlite3 connection."""

import sqlite3
import subprocess
import sys
import textwrap

import pytest

import honker

CLAIMER = textwrap.dedent(
    """
    import sys, honker
    job = honker.open(sys.argv[1]).queue("emails").claim_one("w")
    print(job.payload if job else None)
    """
)


def test_jobs_enqueued_with_sql_in_a_stdlib_connection_are_claimed_by_honker(tmp_path):
    path = str(tmp_path / "app.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    honker.load_extension(conn)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO orders DEFAULT VALUES")
    conn.execute("SELECT honker_enqueue('emails', json_object('order', last_insert_rowid()))")
    conn.execute("COMMIT")
    conn.close()
    # honker's own SQLite opens the file in another process: never two
    # SQLite copies on one file in one process.
    out = subprocess.run([sys.executable, "-c", CLAIMER, path], check=True, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "{'order': 1}"


def test_load_extension_errors_are_clear(tmp_path, monkeypatch):
    class NoLoading:
        pass

    with pytest.raises(honker.HonkerError, match="cannot load extensions"):
        honker.load_extension(NoLoading())
    monkeypatch.setenv("HONKER_EXT", str(tmp_path / "missing.so"))
    with pytest.raises(honker.HonkerError, match="make ext"):
        honker.load_extension(sqlite3.connect(":memory:"))
