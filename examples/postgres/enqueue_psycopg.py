"""Any PostgreSQL client enqueues inside its own transaction by calling honker's
functions: here psycopg writes an order and its job in one transaction, and a
honker worker (its own process, or this one) takes the job.

    python examples/postgres/enqueue_psycopg.py postgresql://user@host/db

The schema of honker's tables is `honker` (the URL's `schema=` picks
another); opening it with honker once creates it.
"""

from __future__ import annotations

import json
import sys

import honker
import psycopg

url = sys.argv[1]
schema = "example_psycopg"
worker_db = honker.open(
    f"{url}?schema={schema}"
)  # creates honker's tables in the schema

with psycopg.connect(url) as conn:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS example_orders (id bigserial PRIMARY KEY, customer text)"
    )
    # One transaction: the order and the job that emails its customer.
    with conn.transaction():
        order_id = conn.execute(
            "INSERT INTO example_orders (customer) VALUES (%s) RETURNING id",
            ["alice@example.com"],
        ).fetchone()[0]
        job_id = conn.execute(
            f"SELECT {schema}.enqueue(%s, %s, %s::jsonb)",
            [
                "emails",
                json.dumps({"order": order_id}),
                json.dumps({"max_attempts": 5}),
            ],
        ).fetchone()[0]
    # A rolled-back transaction leaves neither.
    with conn.transaction():
        conn.execute(f"SELECT {schema}.enqueue('emails', '{{\"order\": -1}}')")
        raise psycopg.Rollback()

job = worker_db.queue("emails").claim_one("worker-1")
assert job is not None and job.id == job_id, job
print(
    f"psycopg enqueued job {job_id} for order {order_id}; honker claimed it: {job.payload}"
)
job.ack()
assert worker_db.queue("emails").claim_one("worker-1") is None, (
    "the rolled-back job does not exist"
)

with psycopg.connect(url) as conn:
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.execute("DROP TABLE example_orders")
worker_db.close()
