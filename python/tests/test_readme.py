"""Docs are tests: the ```python blocks of python/README.md run as written, in order."""

import re
from pathlib import Path


def test_readme_examples_run(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert blocks, "no python examples found"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}  # later blocks continue from earlier ones
    for block in blocks:
        exec(compile(block, "python/README.md", "exec"), namespace)  # noqa: S102 (our own README)
    assert (tmp_path / "app.db").exists()
