"""Docs are tests: every ```python block of python/README.md runs as written."""

import re
from pathlib import Path


def test_readme_examples_run(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "no python examples found"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "python/README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "app.db").exists()
