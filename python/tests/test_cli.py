"""`python -m honker <command>`: the operator's command (the same code as the
`honker` binary) run as a process through the package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import honker


def _honker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "honker", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_operators_commands_run_through_python(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    db = honker.open(path)
    q = db.queue("emails")
    q.set_events(True)
    q.set_retention(completed=honker.Retention(max_count=10))
    q.enqueue({"to": "ada"})
    done = q.enqueue({"to": "grace"})
    doomed = q.enqueue({"to": "nobody"}, max_attempts=1, priority=9)
    bad = q.claim_one("w")
    assert bad is not None and bad.id == doomed and bad.fail("no such address")
    job = q.claim_one("w")
    assert job is not None and job.ack()
    db.close()

    queues = _honker("queues", path, "--json")
    assert queues.returncode == 0, queues.stderr
    (emails,) = json.loads(queues.stdout)
    assert (emails["name"], emails["ready"], emails["dead"], emails["completed"]) == ("emails", 1, 1, 1)
    assert emails["events"] is True

    kept = _honker("jobs", path, "--state", "completed", "--json")
    assert [j["id"] for j in json.loads(kept.stdout)] != [] and json.loads(kept.stdout)[0]["state"] == "completed"
    one = _honker("job", path, str(doomed))
    assert one.returncode == 0 and "no such address" in one.stdout
    events = _honker("events", path, "--after", "0", "--once", "--json")
    kinds = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert kinds.count("enqueued") == 3 and "dead" in kinds and "completed" in kinds, kinds
    requeued = _honker("requeue", path, str(doomed))
    assert requeued.returncode == 0, requeued.stderr
    assert honker.open(path).queue("emails").stats().dead == 0

    # Exit codes: 3 no such job or file, 2 a usage error; --help lists the
    # worker and the operator's commands.
    assert _honker("job", path, "424242").returncode == 3
    assert _honker("queues", str(tmp_path / "typo.db")).returncode == 3
    assert not (tmp_path / "typo.db").exists(), "a mistyped path creates nothing"
    usage = _honker("frobnicate", path)
    assert usage.returncode == 2 and "frobnicate" in usage.stderr
    helped = _honker("--help")
    assert helped.returncode == 0
    assert "python -m honker worker" in helped.stdout and "queues" in helped.stdout
    assert done in [j["id"] for j in json.loads(_honker("jobs", path, "--json").stdout)]


def test_a_following_command_prints_commits_and_ends_on_ctrl_c(tmp_path: Path) -> None:
    import signal

    path = str(tmp_path / "app.db")
    db = honker.open(path)
    stream = db.stream("orders")
    proc = subprocess.Popen(
        [sys.executable, "-m", "honker", "tail", path, "orders", "--after", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        stream.publish({"n": 1})
        line = proc.stdout.readline()  # woken by the commit; the pipe closes if it dies
        assert line.endswith('{"n":1}\n'), line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == -signal.SIGINT, "Ctrl-C ends it at once"
    finally:
        proc.kill()
        proc.wait()
