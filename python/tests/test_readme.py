"""Docs are tests: each ```python block of python/README.md runs as written,
on its own (a fresh interpreter in a fresh directory)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
ALL_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
# Blocks whose first line names a file (`# tasks.py: ...`) are one app, run
# together by test_the_tasks_example_runs_as_an_app; the rest run alone.
NAMED = {m.group(1): b for b in ALL_BLOCKS if (m := re.match(r"# (\w+\.py):", b))}
BLOCKS = [b for b in ALL_BLOCKS if not re.match(r"# (\w+\.py):", b)]
WORKER_CMD = re.search(r"```bash\n(python -m honker worker .*?)\n```", README)


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


def test_the_tasks_example_runs_as_an_app(tmp_path):
    """tasks.py and web.py as files, the worker as the documented command (in
    a process of its own), then SIGTERM: it drains and exits 0."""
    import signal

    assert set(NAMED) == {"tasks.py", "web.py"} and WORKER_CMD is not None
    for name, block in NAMED.items():
        (tmp_path / name).write_text(block)
    argv = WORKER_CMD.group(1).split()
    assert argv[:3] == ["python", "-m", "honker"]
    # tasks.py creates the file and its table before either process races to.
    subprocess.run([sys.executable, "tasks.py"], cwd=tmp_path, check=True, timeout=60)
    worker = subprocess.Popen([sys.executable, *argv[1:]], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        web = subprocess.run(
            [sys.executable, "web.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert web.returncode == 0, web.stderr
        assert web.stdout.strip() == "{'user_id': 1, 'sent_to': 'ada@example.com'}"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    finally:
        if worker.poll() is None:
            worker.kill()
