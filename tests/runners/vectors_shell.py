"""Translates each tests/vectors/*.json file into one SQL script and runs it in
Debian's sqlite3 shell with the extension loaded: labels live in temp
tables, every step is one statement calling a honker_* function, and every
expectation is an INSERT into a table whose CHECK fails (and, with -bail,
stops the shell) when the expectation does not hold.

    /usr/bin/python3 tests/runners/vectors_shell.py PATH/libhonker_ext.so [FILE.json ...]

Python only writes the script and reads the shell's exit status; it computes
no results. Steps that expect an error are SKIPped (a shell script cannot
catch an error), and so are the file checks the other runners make on
leases ("forged").
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

import vectorlib


class Untranslatable(Exception):
    pass


def lit(value: Any) -> str:
    """A SQL literal for a string, integer, real or NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise Untranslatable(f"no SQL literal for {value!r}")


def js(value: Any) -> str:
    """A SQL string holding `value` as JSON text."""
    return lit(json.dumps(value, separators=(",", ":")))


def ref(value: Any) -> str:
    """An id, offset or token: an integer literal, or its label's value."""
    if isinstance(value, str):
        return f"(SELECT value FROM label WHERE name = {lit(value)})"
    return lit(value)


def job_names(ids_sql: str) -> str:
    """JSON array of labels (first label bound to each id, else '#id') for a JSON array of ids."""
    return (
        "(SELECT json_group_array(coalesce((SELECT name FROM joblabel WHERE id = j.value), '#' || j.value)) "
        f"FROM json_each({ids_sql}) AS j)"
    )


PRELUDE = """\
.bail on
PRAGMA journal_mode = WAL;
SELECT honker_bootstrap();
CREATE TEMP TABLE label (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TEMP TABLE joblabel (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TEMP TABLE lockname (token INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TEMP TABLE r (step INTEGER PRIMARY KEY, v);
CREATE TEMP TABLE chk (step INTEGER NOT NULL, ok INTEGER NOT NULL CHECK (ok = 1));
"""


def step_sql(i: int, step: dict[str, Any]) -> list[str]:
    op = step["op"]
    a: dict[str, Any] = step.get("args", {})
    has_expect = "expect" in step
    expect = step.get("expect")
    label = step.get("as")
    if isinstance(expect, dict) and set(expect) == {"error"}:
        raise vectorlib.Skip("not available in the sqlite3 shell: a script cannot catch an expected error")
    v = f"(SELECT v FROM r WHERE step = {i})"
    out: list[str] = []

    def check(cond: str) -> None:
        out.append(f"INSERT INTO chk VALUES ({i}, {cond});")

    if op == "enqueue":
        opts = {k: a[k] for k in ("run_at", "delay_s", "priority", "max_attempts", "key") if k in a}
        call = f"honker_enqueue({lit(a['queue'])}, {js(a['payload'])}, {js(opts)})"
    elif op == "claim":
        call = f"honker_claim_batch({lit(a['queue'])}, {lit(a['worker'])}, {lit(a['n'])})"
    elif op == "ack":
        call = f"honker_ack({ref(a['job'])}, {lit(a['worker'])}, {lit(a['attempt'])})"
    elif op == "release":
        call = f"honker_release({ref(a['job'])}, {lit(a['worker'])}, {lit(a['attempt'])})"
    elif op == "retry":
        call = (
            f"honker_retry({ref(a['job'])}, {lit(a['worker'])}, {lit(a['attempt'])}, "
            f"{lit(a['delay_s'])}, {lit(a.get('error', ''))})"
        )
    elif op == "fail":
        call = f"honker_fail({ref(a['job'])}, {lit(a['worker'])}, {lit(a['attempt'])}, {lit(a.get('error', ''))})"
    elif op == "dead_jobs":
        call = f"honker_dead_jobs({lit(a['queue'])}, {lit(a.get('limit', 100))})"
    elif op == "requeue_dead":
        call = f"honker_requeue_dead({ref(a['job'])})"
    elif op == "get_job_state":
        call = f"honker_get_job({ref(a['job'])})"
    elif op == "cancel":
        call = f"honker_cancel({ref(a['job'])})"
    elif op == "purge":
        call = f"honker_purge({lit(a['queue'])})"
    elif op == "queues":
        call = "honker_queues()"
    elif op == "streams":
        call = (
            "(SELECT json_group_array(json_object('name', s.value ->> 'name', 'lags', "
            "(SELECT json_group_object(c.key, c.value ->> 'lag') "
            "FROM json_each(s.value -> 'consumers') AS c))) FROM json_each(honker_streams()) AS s)"
        )
    elif op == "list_jobs":
        f = ", ".join(f"{lit(k)}, {lit(a[k])}" for k in ("queue", "state", "task", "key", "limit") if k in a)
        before = f", 'before_id', {ref(a['before'])}" if "before" in a else ""
        sep = ", " if f and before else ""
        call = f"honker_jobs(json_object({f}{sep}{before.lstrip(', ')}))"
    elif op == "requeue_dead_all":
        call = f"honker_requeue_dead_all({lit(a['queue'])}, {lit(a.get('reason'))})"
    elif op == "cancel_many":
        call = f"honker_cancel_many(json_array({', '.join(ref(j) for j in a['jobs'])}))"
    elif op == "pause":
        call = f"honker_pause({lit(a['queue'])})"
    elif op == "resume":
        call = f"honker_resume({lit(a['queue'])})"
    elif op == "set_max_in_flight":
        call = f"honker_set_max_in_flight({lit(a['queue'])}, {lit(a['max'])})"
    elif op == "set_rate_limit":
        call = f"honker_set_rate_limit({lit(a['queue'])}, {lit(a['limit'])}, {lit(a.get('per_s'))})"
    elif op == "queue_controls":
        call = f"honker_queue_controls({lit(a['queue'])})"
    elif op == "set_retention":
        limits = ", ".join("NULL" if a.get(t) is None else js(a[t]) for t in ("completed", "dead"))
        call = f"honker_set_retention({lit(a['queue'])}, {limits})"
    elif op == "prune":
        call = f"honker_prune({lit(a['queue'])})"
    elif op == "set_events":
        call = f"honker_set_events({lit(a['queue'])}, {lit(a['on'])})"
    elif op == "events":
        call = "honker_read_since('honker:events', 0, 1000)"
    elif op == "rate_limit":
        call = f"honker_rate_limit({lit(a['key'])}, {lit(a['limit'])}, {lit(a['per_s'])})"
    elif op == "cron_next":
        tz = f", {lit(a['tz'])}" if "tz" in a else ""
        call = f"honker_cron_next({lit(a['expr'])}, {lit(a['after_ms'])}{tz})"
    elif op == "publish":
        key = f", {lit(a['key'])}" if "key" in a else ""
        call = f"honker_publish({lit(a['stream'])}, {js(a['payload'])}{key})"
    elif op == "read_since":
        call = f"honker_read_since({lit(a['stream'])}, {ref(a['offset'])}, {lit(a.get('limit', 100))})"
    elif op == "save_offset":
        call = f"honker_save_offset({lit(a['stream'])}, {lit(a['consumer'])}, {ref(a['offset'])})"
    elif op == "get_offset":
        call = f"honker_get_offset({lit(a['stream'])}, {lit(a['consumer'])})"
    elif op == "lock_acquire":
        call = f"honker_lock_acquire({lit(a['name'])}, {lit(a['owner'])}, {lit(a['ttl_s'])})"
    elif op == "lock_release":
        token = ref(a["lock"])
        call = f"honker_lock_release((SELECT name FROM lockname WHERE token = {token}), {token})"
    elif op == "ack_batch":
        items = ", ".join(
            f"json_object('id', {ref(x['job'])}, 'worker_id', {lit(x['worker'])}, 'attempts', {lit(x['attempt'])})"
            for x in a["leases"]
        )
        call = f"honker_ack_batch(json_array({items}))"
    elif op == "schedule_add":
        call = f"honker_schedule_add({lit(a['name'])}, {lit(a['queue'])}, {lit(a['cron'])}, {js(a['payload'])})"
    elif op == "schedule_tick":
        call = "(SELECT json_group_array(f.value ->> 'name') FROM json_each(honker_schedule_tick()) AS f)"
    elif op == "schedule_error":
        prefix = lit(a["name_prefix"])
        call = (
            "(SELECT s.value ->> 'last_error' IS NOT NULL FROM json_each(honker_schedule_list()) AS s "
            f"WHERE substr(s.value ->> 'name', 1, length({prefix})) = {prefix})"
        )
    elif op == "execute":
        if a.get("params"):
            raise vectorlib.Skip("not available in the sqlite3 shell runner: statement parameters")
        out.append(f"{a['sql']};")
        call = "changes()"
    else:
        raise vectorlib.VectorError(f"unknown op {op!r}")
    out.append(f"INSERT INTO r VALUES ({i}, {call});")

    if op == "enqueue":
        if isinstance(expect, str):
            check(f"{v} = {ref(expect)}")
        else:
            check(f"NOT EXISTS (SELECT 1 FROM joblabel WHERE id = {v})")
        if label:
            out.append(f"INSERT OR REPLACE INTO label VALUES ({lit(label)}, {v});")
            out.append(f"INSERT OR IGNORE INTO joblabel VALUES ({v}, {lit(label)});")
    elif op in ("claim", "dead_jobs", "list_jobs"):
        ids = f"(SELECT json_group_array(j.value ->> 'id') FROM json_each({v}) AS j)"
        if has_expect:
            check(f"{job_names(ids)} = {js(expect)}")
    elif op == "get_job_state":
        if expect is None:
            check(f"{v} IS NULL")
        else:
            fields = {"state": expect} if isinstance(expect, str) else expect
            for k, want in fields.items():
                check(f"{v} -> {lit('$.' + k)} = json({js(want)})")
    elif op in ("publish", "lock_acquire"):
        if isinstance(expect, dict) and set(expect) == {"after"}:
            check(f"{v} > {ref(expect['after'])}")
        elif expect is True or expect is False:
            check(f"({v} IS NOT NULL) = {lit(expect)}")
        elif has_expect:
            check(f"{v} = {ref(expect)}")
        if label:
            out.append(f"INSERT OR REPLACE INTO label VALUES ({lit(label)}, {v});")
        if op == "lock_acquire":
            out.append(f"INSERT INTO lockname SELECT {v}, {lit(a['name'])} WHERE {v} IS NOT NULL;")
    elif op == "events":
        if has_expect:
            names = (
                "(SELECT json_group_array((e.value -> 'payload' ->> 'type') || ' ' || "
                "coalesce((SELECT name FROM joblabel WHERE id = e.value -> 'payload' ->> 'job_id'), "
                f"'#' || (e.value -> 'payload' ->> 'job_id'))) FROM json_each({v}) AS e)"
            )
            check(f"{names} = {js(expect)}")
    elif op == "read_since":
        if has_expect:
            check(f"json_array_length({v}) = {len(expect)}")
            for n, event in enumerate(expect):
                for k, want in event.items():
                    path = lit(f"$[{n}].{k}")
                    if k == "offset":
                        check(f"{v} ->> {path} = {ref(want)}")
                    else:
                        check(f"{v} -> {path} = json({js(want)})")
    elif op in ("get_offset", "cron_next", "ack_batch", "execute", "purge", "requeue_dead_all", "cancel_many", "prune"):
        if has_expect:
            check(f"{v} = {ref(expect)}")
    elif op == "schedule_tick":
        if has_expect:
            check(f"{v} = {js(expect)}")
    elif op == "streams":
        if has_expect:
            check(f"json({v}) = json({js(expect)})")
    elif op == "queues":
        if has_expect:
            check(f"json_array_length({v}) = {len(expect)}")
            for n, q in enumerate(expect):
                for k, want in q.items():
                    check(f"{v} -> {lit(f'$[{n}].{k}')} = json({js(want)})")
    elif op == "queue_controls":
        if has_expect:
            check(f"(SELECT count(*) FROM json_each({v})) = {len(expect)}")
            for k, want in expect.items():
                check(f"{v} -> {lit('$.' + k)} = json({js(want)})")
    else:
        check(f"{v} IN (0, 1)")
        if has_expect:
            check(f"{v} = {lit(expect)}")
    return out


def translate(path: str) -> tuple[str, list[str], int]:
    """The script, the SKIP reasons by step, and the number of steps translated."""
    with open(path, encoding="utf-8") as f:
        scenario = json.load(f)
    lines = [PRELUDE]
    skips: list[str] = []
    n = 0
    for i, step in enumerate(scenario["steps"]):
        try:
            stmts = step_sql(i, step)
        except vectorlib.Skip as s:
            skips.append(f"step {i} {step['op']}: {s}")
            lines.append(f"-- step {i} {step['op']}: SKIP")
            continue
        n += 1
        lines.append(f"-- step {i} {step['op']} {json.dumps(step.get('args', {}))}")
        lines.extend(stmts)
    lines.append("SELECT 'done';")
    return "\n".join(lines) + "\n", skips, n


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    ext = os.path.abspath(sys.argv[1])
    ext = ext.removesuffix(".so").removesuffix(".dylib")
    files = [os.path.abspath(p) for p in sys.argv[2:]] or sorted(glob.glob(os.path.join(vectorlib.VECTORS, "*.json")))
    failed = steps = skipped = 0
    for path in files:
        name = os.path.basename(path)
        script, skips, n = translate(path)
        for s in skips:
            print(f"SKIP {name} {s}")
        with tempfile.TemporaryDirectory(prefix="honker-vectors-shell-") as tmp:
            full = f".load {ext}\n{script}"
            with open(os.path.join(tmp, "script.sql"), "w", encoding="utf-8") as f:
                f.write(full)
            proc = subprocess.run(
                ["sqlite3", "-bail", os.path.join(tmp, "vectors.db")],
                input=full,
                capture_output=True,
                text=True,
                check=False,
            )
        out = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and out and out[-1] == "done":
            steps += n
            skipped += len(skips)
            extra = f", {len(skips)} skipped" if skips else ""
            print(f"ok   {name} ({n} steps{extra})")
            continue
        failed += 1
        where = ""
        m = re.search(r"near line (\d+)", proc.stderr)
        if m:
            # The step comment nearest above the failing line (+1: the .load line).
            script_lines = full.splitlines()[: int(m.group(1))]
            for line in reversed(script_lines):
                if line.startswith("-- step "):
                    where = line[3:] + ": "
                    break
            where += script_lines[-1].strip() + ": "
        print(f"FAIL {name}: {where}{proc.stderr.strip()}")
    print(
        f"sql shell: {len(files)} files, {len(files) - failed} passed, {failed} failed; "
        f"{steps} steps run, {skipped} skipped"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
