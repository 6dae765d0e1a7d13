"""Docs are tests: each ```python block of python/README.md runs as written,
on its own (a fresh interpreter in a fresh directory)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("n", range(len(BLOCKS)))
def test_readme_example_runs_alone(n, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", BLOCKS[n]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"block {n} failed:\n{BLOCKS[n]}\n{out.stderr}"
    assert (tmp_path / "app.db").exists()
    if "alice@example.com" in BLOCKS[n] and "claim" in BLOCKS[n]:
        assert "{'to': 'alice@example.com'}" in out.stdout
    if "subscribe" in BLOCKS[n]:
        assert out.stdout.splitlines()[:2] == ["1 {'order': 0}", "2 {'order': 1}"]
        assert out.stdout.splitlines()[2] == "1", "the offset before the event in hand"
