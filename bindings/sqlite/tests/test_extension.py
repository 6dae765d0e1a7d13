"""The honker loadable extension from Debian's python3 sqlite3 module.

Run: /usr/bin/python3 bindings/sqlite/tests/test_extension.py PATH/libhonker_ext.so
(Debian's interpreter: pyenv builds here lack enable_load_extension.)
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

EXT = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.environ["HONKER_EXT"])


def connect(path):
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit; BEGIN by hand
    conn.enable_load_extension(True)
    conn.load_extension(EXT)
    conn.enable_load_extension(False)
    return conn


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "app.db")
        self.db = connect(self.path)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.assertEqual(self.one("SELECT honker_bootstrap()"), 6)

    def tearDown(self):
        self.db.close()
        self.dir.cleanup()

    def one(self, sql, *args):
        return self.db.execute(sql, args).fetchone()[0]

    def js(self, sql, *args):
        return json.loads(self.one(sql, *args))

    def fails(self, fragment, sql, *args):
        with self.assertRaises(sqlite3.Error) as cm:
            self.db.execute(sql, args).fetchall()
        self.assertIn(fragment, str(cm.exception))


class Queues(Base):
    def test_release_gives_back_without_using_the_attempt(self):
        a = self.one("SELECT honker_enqueue('r', '1', '{\"max_attempts\": 1}')")
        job = self.js("SELECT honker_claim_batch('r', 'w', 1)")[0]
        self.assertEqual(self.one("SELECT honker_release(?, 'intruder', ?)", a, job["attempts"]), 0)
        self.assertEqual(self.one("SELECT honker_release(?, 'w', ?)", a, job["attempts"]), 1)
        self.assertEqual(self.one("SELECT honker_release(?, 'w', ?)", a, job["attempts"]), 0)
        again = self.js("SELECT honker_claim_batch('r', 'w2', 1)")[0]
        self.assertEqual((again["id"], again["attempts"]), (a, 1))

    def test_round_trip(self):
        a = self.one("SELECT honker_enqueue('emails', '{\"to\":\"a\"}')")
        b = self.one("SELECT honker_enqueue('emails', '{\"to\":\"b\"}', '{\"priority\": 9, \"max_attempts\": 2}')")
        self.assertEqual(self.one("SELECT honker_enqueue('emails', '1', '{\"key\": \"k\"}')"),
                         self.one("SELECT honker_enqueue('emails', '2', '{\"key\": \"k\"}')"))
        later = self.one("SELECT honker_enqueue('emails', '3', '{\"delay_s\": 3600}')")
        jobs = self.js("SELECT honker_claim_batch('emails', 'w', 10, 30)")
        self.assertEqual([j["id"] for j in jobs][:2], [b, a])
        self.assertNotIn(later, [j["id"] for j in jobs])
        self.assertEqual(jobs[0]["payload"], {"to": "b"})
        # The next deadline is the earliest of the leases' end and the delayed job's run_at.
        self.assertEqual(self.one("SELECT honker_next_deadline('emails')"), jobs[0]["lease_until_ms"])
        jb = jobs[0]
        self.assertEqual(self.one("SELECT honker_ack(?, 'intruder', ?)", jb["id"], jb["attempts"]), 0)
        self.assertEqual(self.one("SELECT honker_heartbeat(?, 'w', ?, 60)", jb["id"], jb["attempts"]), 1)
        self.assertEqual(self.one("SELECT honker_retry(?, 'w', ?, 0, 'boom')", jb["id"], jb["attempts"]), 1)
        again = self.js("SELECT honker_claim_batch('emails', 'w', 1)")[0]
        self.assertEqual((again["id"], again["attempts"], again["last_error"]), (b, 2, "boom"))
        self.assertEqual(self.one("SELECT honker_fail(?, 'w', ?, 'bad')", b, 2), 1)
        dead = self.js("SELECT honker_dead_jobs('emails')")
        self.assertEqual((dead[0]["id"], dead[0]["dead_reason"]), (b, "failed"))
        self.assertEqual(self.one("SELECT honker_requeue_dead(?)", b), 1)
        self.fails("not found", "SELECT honker_requeue_dead(?)", b)
        claimed = self.one("SELECT honker_claim_batch('emails', 'w', 10)")
        n = len(json.loads(claimed))
        self.fails("bare list of ids", "SELECT honker_ack_batch(?, 'w')", json.dumps([j["id"] for j in json.loads(claimed)]))
        self.assertEqual(self.one("SELECT honker_ack_batch(?)", claimed), n, "the claimed jobs, as returned")
        self.assertEqual(self.one("SELECT honker_ack_batch(?)", claimed), 0, "acked already")
        rest = [j for j in jobs[1:]]
        for j in rest:
            self.assertEqual(self.one("SELECT honker_ack(?, 'w', ?)", j["id"], j["attempts"]), 1)
        self.assertEqual(self.one("SELECT honker_cancel(?)", later), 1)
        self.assertEqual(self.js("SELECT honker_queue_stats('emails')"), {"ready": 0, "scheduled": 0, "processing": 0, "dead": 0})
        exp = self.one("SELECT honker_enqueue('old', '1', '{\"expires_s\": 0.001}')")
        time.sleep(0.01)  # let the 1 ms start deadline pass (wall clock, no waiting on an outcome)
        self.assertEqual(self.one("SELECT honker_sweep_expired('old')"), 1)
        self.assertEqual(self.js("SELECT honker_get_job(?)", exp)["dead_reason"], "expired")

    def test_business_transaction_commits_and_rolls_back_together(self):
        self.db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT)")
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO orders (user_id) VALUES (1)")
        self.one("SELECT honker_enqueue('emails', json_object('order', last_insert_rowid()))")
        self.db.execute("ROLLBACK")
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO orders (user_id) VALUES (2)")
        kept = self.one("SELECT honker_enqueue('emails', json_object('order', last_insert_rowid()))")
        self.db.execute("COMMIT")
        self.assertEqual(self.one("SELECT COUNT(*) FROM orders"), 1)
        self.assertEqual([j["id"] for j in self.js("SELECT honker_claim_batch('emails', 'w', 10)")], [kept])

    def test_inside_a_statement_that_writes(self):
        for i in range(3):
            self.one("SELECT honker_enqueue('q', ?)", str(i))
        self.db.execute("CREATE TABLE log (job TEXT)")
        self.db.execute("INSERT INTO log SELECT value FROM json_each(honker_claim_batch('q', 'w', 2))")
        self.assertEqual(self.one("SELECT COUNT(*) FROM log"), 2)
        self.assertEqual(self.js("SELECT honker_queue_stats('q')")["processing"], 2)
        # The statement fails after its claim: the claim is undone with it.
        with self.assertRaises(sqlite3.Error):
            self.db.execute("INSERT INTO log SELECT honker_claim_batch('q', 'w', 1) UNION ALL SELECT honker_enqueue('', '1')")
        self.assertEqual(self.js("SELECT honker_queue_stats('q')"), {"ready": 1, "scheduled": 0, "processing": 2, "dead": 0})
        self.assertEqual(self.one("SELECT COUNT(*) FROM log"), 2)

    def test_bad_arguments_are_sql_errors(self):
        self.fails("invalid JSON in `payload`", "SELECT honker_enqueue('q', 'not json')")
        self.fails("`queue`: must not be empty", "SELECT honker_enqueue('', '1')")
        self.fails("`queue`: must be TEXT, got INTEGER", "SELECT honker_enqueue(5, '1')")
        self.fails("unknown option", "SELECT honker_enqueue('q', '1', '{\"nope\": 1}')")
        self.fails("must be a positive number of seconds", "SELECT honker_lock_acquire('l', 'o', -1)")
        self.fails("invalid cron expression", "SELECT honker_cron_next('61 * * * *', 0)")
        self.fails("unknown time zone", "SELECT honker_cron_next('0 3 * * *', 0, 'Mars/Base')")
        self.fails("`n`: must be at least 1", "SELECT honker_claim_batch('q', 'w', 0)")
        self.fails("honker_claim_batch(queue, worker, n", "SELECT honker_claim_batch('q')")
        self.fails("`limit`: must not be negative, got -1", "SELECT honker_read_since('s', 0, -1)")
        self.fails("`limit`: must not be negative", "SELECT honker_dead_jobs('q', -5)")
        self.fails("`limit`: must not be negative", "SELECT honker_notifications_since(0, 'c', -1)")


class StreamsNotifyLocksResultsSchedules(Base):
    def test_streams(self):
        a = self.one("SELECT honker_publish('orders', '{\"id\":1}')")
        b = self.one("SELECT honker_publish('orders', '{\"id\":2}', 'user:7')")
        evs = self.js("SELECT honker_read_since('orders', 0, 10)")
        self.assertEqual([(e["offset"], e["key"], e["payload"]) for e in evs], [(a, None, {"id": 1}), (b, "user:7", {"id": 2})])
        self.assertEqual(self.one("SELECT honker_save_offset('orders', 'c', ?)", b), 1)
        self.assertEqual(self.one("SELECT honker_save_offset('orders', 'c', ?)", a), 0)
        self.assertEqual(self.one("SELECT honker_get_offset('orders', 'c')"), b)
        self.assertEqual(self.one("SELECT honker_last_offset('orders')"), b)
        self.assertEqual(self.one("SELECT honker_last_offset('nothing here')"), 0)
        self.assertEqual(self.one("SELECT honker_stream_retention('orders', NULL, 1)"), 1)
        self.assertEqual(self.one("SELECT honker_stream_prune('orders')"), 1)

    def test_notify(self):
        n = self.one("SELECT notify('orders', '{\"id\":1}')")
        self.one("SELECT honker_notify('other', '2')")
        got = self.js("SELECT honker_notifications_since(?, 'orders')", n - 1)
        self.assertEqual([(x["id"], x["payload"]) for x in got], [(n, {"id": 1})])
        self.assertEqual(self.one("SELECT honker_notifications_prune(3600)"), 0)

    def test_locks_rate_limits_results(self):
        t1 = self.one("SELECT honker_lock_acquire('m', 'a', 60)")
        self.assertIsNone(self.one("SELECT honker_lock_acquire('m', 'b', 60)"))
        held = self.js("SELECT honker_lock_holder('m')")
        self.assertEqual((held["name"], held["owner"], held["fencing_token"]), ("m", "a", t1))
        self.assertGreater(held["expires_at_ms"], 0)
        self.assertEqual(self.one("SELECT honker_lock_renew('m', ?, 60)", t1), 1)
        self.assertEqual(self.one("SELECT honker_lock_release('m', ?)", t1), 1)
        self.assertIsNone(self.one("SELECT honker_lock_holder('m')"))
        self.assertGreater(self.one("SELECT honker_lock_acquire('m', 'b', 60)"), t1)
        allowed = sum(self.one("SELECT honker_rate_limit('k', 3, 3600)") for _ in range(5))
        self.assertIn(allowed, (3, 6))  # 6 only if an hour boundary fell inside the loop
        self.assertEqual(self.one("SELECT honker_result_save(7, '{\"ok\":true}', 60)"), 1)
        self.assertEqual(json.loads(self.one("SELECT honker_result_get(7)")), {"ok": True})
        self.assertIsNone(self.one("SELECT honker_result_get(8)"))
        self.assertEqual(self.one("SELECT honker_result_sweep()"), 0)

    def test_schedules_and_cron(self):
        self.assertEqual(self.one("SELECT honker_schedule_add('nightly', 'backups', '0 3 * * *', '{\"t\":1}', 2, 3600, 'Europe/Paris')"), 1)
        self.one("SELECT honker_schedule_add('now', 'ticks', '@every 1s', '1')")
        lst = self.js("SELECT honker_schedule_list()")
        self.assertEqual([s["name"] for s in lst], ["nightly", "now"])
        self.assertEqual(lst[0]["cron"], "CRON_TZ=Europe/Paris 0 3 * * *")
        self.assertEqual(self.one("SELECT honker_schedule_soonest()"), lst[1]["next_fire_at_ms"])
        self.assertEqual(self.one("SELECT honker_schedule_pause('now')"), 1)
        self.assertEqual(self.one("SELECT honker_schedule_resume('now')"), 1)
        self.fails("not found", "SELECT honker_schedule_pause('missing')")
        self.assertEqual(self.js("SELECT honker_schedule_tick()"), [])
        self.assertEqual(self.one("SELECT honker_schedule_remove('now')"), 1)
        # 2024-03-31 (Paris springs forward): 02:30 local does not exist; fires at 03:00 (01:00 UTC).
        self.assertEqual(self.one("SELECT honker_cron_next('30 2 * * *', 1711836000000, 'Europe/Paris')"), 1711846800000)
        self.assertEqual(self.one("SELECT honker_cron_next('0 0 * * *', 0)"), 86400000)


class TrustedSchema(Base):
    def make_triggers(self):
        self.db.executescript("""
            CREATE TABLE orders (id INTEGER PRIMARY KEY);
            CREATE TRIGGER orders_notify AFTER INSERT ON orders
              BEGIN SELECT notify('orders', json_object('id', NEW.id)); END;
            CREATE TABLE signups (id INTEGER PRIMARY KEY);
            CREATE TRIGGER signups_enqueue AFTER INSERT ON signups
              BEGIN SELECT honker_enqueue('welcome', json_object('id', NEW.id)); END;
        """)

    def test_triggers_work_in_a_trusted_schema(self):
        self.make_triggers()
        self.db.execute("PRAGMA trusted_schema = ON")
        self.db.execute("INSERT INTO orders DEFAULT VALUES")
        self.db.execute("INSERT INTO signups DEFAULT VALUES")
        self.assertEqual(len(self.js("SELECT honker_notifications_since(0, 'orders')")), 1)
        self.assertEqual(self.js("SELECT honker_queue_stats('welcome')")["ready"], 1)

    def test_a_hostile_file_cannot_make_an_untrusting_host_write(self):
        self.make_triggers()
        self.db.close()
        self.db = connect(self.path)  # as a host opening someone else's file
        self.db.execute("PRAGMA trusted_schema = OFF")
        for table in ("orders", "signups"):
            with self.assertRaises(sqlite3.Error) as cm:
                self.db.execute(f"INSERT INTO {table} DEFAULT VALUES")
            self.assertIn("unsafe use of", str(cm.exception))
        self.assertEqual(self.one("SELECT COUNT(*) FROM orders"), 0)
        self.assertEqual(self.js("SELECT honker_queue_stats('welcome')")["ready"], 0)


class Security(Base):
    def test_a_hostile_schema_cannot_call_honker_when_the_host_distrusts_it(self):
        self.db.execute("PRAGMA trusted_schema = OFF")
        self.db.executescript(
            "CREATE TABLE t (x);"
            "CREATE TRIGGER tg AFTER INSERT ON t BEGIN SELECT honker_enqueue('victim', '1'); END;"
        )
        self.fails("unsafe use of honker_enqueue", "INSERT INTO t VALUES (1)")
        self.assertEqual(self.one("SELECT COUNT(*) FROM _honker_live WHERE queue = 'victim'"), 0)

    def test_errors_carry_their_code(self):
        self.fails("honker_enqueue [invalid_json]: invalid JSON in `payload`", "SELECT honker_enqueue('q', 'nope')")
        self.fails("honker_enqueue [invalid_argument]: invalid argument `run_at`", "SELECT honker_enqueue('q', '1', '{\"run_at\": 1e19}')")
        self.fails("honker_cron_next [invalid_cron]", "SELECT honker_cron_next('1/4294967295 * * * *', 0)")


class Readme(unittest.TestCase):
    def test_the_python_example_runs_as_written(self):
        readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
        with open(readme, encoding="utf-8") as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.DOTALL)
        self.assertEqual(len(blocks), 1)
        # The README's path is relative to the repository root; this test's is absolute.
        code = re.sub(r'load_extension\("[^"]*"\)', f"load_extension({os.path.splitext(EXT)[0]!r})", blocks[0])
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run([sys.executable, "-c", code], cwd=tmp, capture_output=True, text=True, check=True)
        self.assertIn('"payload":{"order":1}', out.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
