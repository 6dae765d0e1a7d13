#!/usr/bin/env bash
# The honker extension from Debian's sqlite3 shell: bootstrap, then a round
# trip of every function group. Each check prints "ok NAME" or "FAIL NAME";
# any FAIL, SQL error or missing check fails the script.
# Usage: bindings/sqlite/tests/shell.sh path/to/libhonker_ext.so
set -euo pipefail
base="$(basename "$1")"
base="${base%.so}"
ext="$(cd "$(dirname "$1")" && pwd)/${base%.dylib}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
out="$dir/out.txt"
sqlite3 -bail "$dir/app.db" > "$out" 2>&1 <<SQL || { cat "$out"; echo "sqlite3 failed"; exit 1; }
.load $ext
SELECT CASE WHEN honker_bootstrap() >= 5 THEN 'ok bootstrap' ELSE 'FAIL bootstrap' END;
SELECT CASE WHEN honker_version() <> '' THEN 'ok version' ELSE 'FAIL version' END;
PRAGMA journal_mode = WAL;
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INT);
-- A business write and its job, rolled back together, then committed together.
BEGIN;
INSERT INTO orders (user_id) VALUES (1);
SELECT honker_enqueue('emails', json_object('order', last_insert_rowid())) > 0;
ROLLBACK;
BEGIN;
INSERT INTO orders (user_id) VALUES (2);
SELECT honker_enqueue('emails', json_object('order', last_insert_rowid()), '{"priority": 3}') > 0;
COMMIT;
SELECT CASE WHEN (SELECT COUNT(*) FROM orders) = 1 THEN 'ok rollback drops both' ELSE 'FAIL rollback drops both' END;
CREATE TEMP TABLE claimed AS SELECT value AS job FROM json_each(honker_claim_batch('emails', 'w', 10));
SELECT CASE WHEN (SELECT COUNT(*) FROM claimed) = 1 AND (SELECT json_extract(job, '$.payload.order') FROM claimed) = (SELECT id FROM orders)
  THEN 'ok claim' ELSE 'FAIL claim' END;
SELECT CASE WHEN honker_heartbeat(json_extract(job, '$.id'), 'w', 1, 30) = 1 THEN 'ok heartbeat' ELSE 'FAIL heartbeat' END FROM claimed;
SELECT CASE WHEN honker_ack(json_extract(job, '$.id'), 'other', 1) = 0 THEN 'ok foreign ack refused' ELSE 'FAIL foreign ack refused' END FROM claimed;
SELECT CASE WHEN honker_ack(json_extract(job, '$.id'), 'w', 1) = 1 THEN 'ok ack' ELSE 'FAIL ack' END FROM claimed;
SELECT CASE WHEN json_extract(honker_queue_stats('emails'), '$.ready') = 0 THEN 'ok stats' ELSE 'FAIL stats' END;
-- Streams, notify, locks, rate limits, results, schedules, cron.
SELECT CASE WHEN honker_publish('orders', '{"id":1}') < honker_publish('orders', '{"id":2}', 'k') THEN 'ok publish' ELSE 'FAIL publish' END;
SELECT CASE WHEN json_array_length(honker_read_since('orders', 0, 10)) = 2 THEN 'ok read_since' ELSE 'FAIL read_since' END;
SELECT CASE WHEN honker_save_offset('orders', 'c', 2) = 1 AND honker_get_offset('orders', 'c') = 2 THEN 'ok offsets' ELSE 'FAIL offsets' END;
SELECT CASE WHEN notify('orders', '{"id":1}') > 0 THEN 'ok notify' ELSE 'FAIL notify' END;
SELECT CASE WHEN json_extract(honker_notifications_since(0, 'orders'), '\$[0].payload.id') = 1 THEN 'ok notifications_since' ELSE 'FAIL notifications_since' END;
SELECT CASE WHEN honker_lock_acquire('m', 'a', 60) > 0 AND honker_lock_acquire('m', 'b', 60) IS NULL THEN 'ok lock' ELSE 'FAIL lock' END;
SELECT CASE WHEN honker_rate_limit('k', 1, 3600) = 1 THEN 'ok rate_limit' ELSE 'FAIL rate_limit' END;
SELECT CASE WHEN honker_result_save(1, '{"x":1}', 60) = 1 AND honker_result_get(1) = '{"x":1}' THEN 'ok results' ELSE 'FAIL results' END;
SELECT CASE WHEN honker_schedule_add('n', 'backups', '0 3 * * *', '{}') = 1 AND json_array_length(honker_schedule_list()) = 1 THEN 'ok schedule' ELSE 'FAIL schedule' END;
SELECT CASE WHEN honker_cron_next('0 0 * * *', 0) = 86400000 THEN 'ok cron_next' ELSE 'FAIL cron_next' END;
SQL
cat "$out"
expected=18
oks=$(grep -c '^ok ' "$out" || true)
if grep -q 'FAIL' "$out" || [ "$oks" -ne "$expected" ]; then
  echo "shell test: $oks of $expected checks passed"
  exit 1
fi
# Bad input is an SQL error naming the problem, and the shell survives it.
err=$(sqlite3 "$dir/app.db" ".load $ext" "SELECT honker_enqueue('q', 'not json');" 2>&1 || true)
case "$err" in
  *"invalid JSON in \`payload\`"*) echo "ok bad JSON is a clear SQL error" ;;
  *) echo "FAIL bad JSON: $err"; exit 1 ;;
esac
# Docs are tests: the README's SQL blocks run as written (the extension's
# path aside: the README's is relative to the repository root) on a new
# file, and its job is claimed.
readme="$(dirname "$0")/../README.md"
awk '/^```/{ insql = ($0 == "```sql"); next } insql' "$readme" |
  sed "s#^\.load .*#.load $ext#" > "$dir/readme.sql"
got=$(sqlite3 -bail "$dir/readme.db" < "$dir/readme.sql" 2>&1) || { echo "FAIL README's SQL: $got"; exit 1; }
case "$got" in
  *'"payload":{"order":1}'*) echo "ok README's SQL" ;;
  *) echo "FAIL README's SQL printed: $got"; exit 1 ;;
esac
echo "$((oks + 2)) passed, 0 failed"
