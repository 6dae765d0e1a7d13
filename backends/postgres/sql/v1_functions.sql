-- The operations, as functions in the schema, for every client (psycopg,
-- node-postgres, SQL) and for honker's own Store. `{s}` is the schema.

CREATE FUNCTION {s}.now_ms() RETURNS bigint LANGUAGE sql VOLATILE AS
    $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- A bad argument: SQLSTATE 22023, the argument in COLUMN, why in DETAIL.
CREATE FUNCTION {s}.invalid(name text, reason text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '22023', COLUMN = name, DETAIL = reason,
        MESSAGE = format('invalid argument `%s`: %s', name, reason);
END $$;

-- Checks a name (queue, worker, stream, channel, key ...): not empty, no
-- NUL (text cannot hold one anyway), at most 512 bytes.
CREATE FUNCTION {s}.check_name(what text, value text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL OR value = '' THEN
        PERFORM {s}.invalid(what, 'must not be empty');
    ELSIF octet_length(value) > 512 THEN
        PERFORM {s}.invalid(what, format('is %s bytes long; the limit is 512', octet_length(value)));
    END IF;
END $$;

-- Checks that text is one JSON value (SQLSTATE 22P02 if not).
CREATE FUNCTION {s}.check_json(what text, value text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM value::jsonb;
EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION USING ERRCODE = '22P02', COLUMN = what, DETAIL = SQLERRM,
        MESSAGE = format('invalid JSON in `%s`: %s', what, SQLERRM);
END $$;

-- ms after `start`, refusing instants past the year 9999.
CREATE FUNCTION {s}.after(what text, start bigint, ms double precision) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF ms IS NULL THEN
        RETURN NULL;
    END IF;
    IF ms < 0 THEN
        PERFORM {s}.invalid(what, 'must not be negative');
    END IF;
    IF start + ms > 253402300799999 THEN
        PERFORM {s}.invalid(what, format('%s s is out of range: instants must fall between 1970 and the year 9999', round((ms / 1000)::numeric)));
    END IF;
    RETURN start + round(ms)::bigint;
END $$;

-- Wakes waiters in every process: one notification per transaction (the
-- same payload twice in one transaction is sent once).
CREATE FUNCTION {s}.wake() RETURNS void LANGUAGE sql AS
    $$ SELECT pg_notify('{s}_wake', '') $$;

-- The task an envelope payload names (NULL for any other payload).
CREATE FUNCTION {s}.task_of(p_payload text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    j jsonb;
BEGIN
    j := p_payload::jsonb;
    IF jsonb_typeof(j) = 'object' AND jsonb_typeof(j->'task') = 'string' AND j->>'task' <> '' THEN
        RETURN j->>'task';
    END IF;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- Does `queue` publish lifecycle events?
CREATE FUNCTION {s}.events_on(p_queue text) RETURNS boolean LANGUAGE sql STABLE AS
    $$ SELECT coalesce((SELECT events FROM {s}.queues WHERE queue = p_queue), false) $$;

-- Publishes a lifecycle event to the stream honker:events, keyed by queue.
CREATE FUNCTION {s}.emit(p_kind text, p_queue text, p_id bigint, p_now bigint,
                         p_attempt integer DEFAULT NULL, p_payload text DEFAULT NULL,
                         p_worker text DEFAULT NULL, p_error text DEFAULT NULL,
                         p_reason text DEFAULT NULL, p_run_at bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.publish('honker:events',
        jsonb_strip_nulls(jsonb_build_object(
            'type', p_kind, 'queue', p_queue, 'job_id', p_id, 'at_ms', p_now,
            'attempt', p_attempt, 'task', {s}.task_of(p_payload), 'worker_id', p_worker,
            'error', p_error, 'reason', p_reason, 'run_at_ms', p_run_at))::text,
        p_queue, p_now);
END $$;

-- ---- queues ------------------------------------------------------------------

-- Adds a job; its id (or, with an idempotency key a live job of the queue
-- holds, that job's). Options (jsonb): delay_s, run_at (epoch s),
-- priority, max_attempts (default 3), expires_s, key.
CREATE FUNCTION {s}.enqueue(p_queue text, p_payload text, p_opts jsonb DEFAULT '{}',
                            p_now bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    now_ms  bigint := coalesce(p_now, {s}.now_ms());
    k       text := p_opts->>'key';
    r       record;
    new_id  bigint;
BEGIN
    r := {s}.plan(p_queue, p_payload, p_opts, now_ms);
    IF k IS NOT NULL THEN
        PERFORM {s}.check_name('key', k);
        SELECT id INTO new_id FROM {s}.live WHERE queue = p_queue AND idem_key = k;
        IF FOUND THEN
            RETURN new_id;
        END IF;
    END IF;
    INSERT INTO {s}.live (queue, payload, state, priority, run_at, max_attempts, expires_at,
                          idem_key, created_at)
    VALUES (p_queue, p_payload, r.state, r.priority, r.run_at, r.max_attempts, r.expires_at, k, now_ms)
    ON CONFLICT (queue, idem_key) WHERE idem_key IS NOT NULL DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NULL THEN
        -- Another transaction added the key first.
        SELECT id INTO new_id FROM {s}.live WHERE queue = p_queue AND idem_key = k;
        RETURN new_id;
    END IF;
    IF {s}.events_on(p_queue) THEN
        PERFORM {s}.emit('enqueued', p_queue, new_id, now_ms, p_payload => p_payload, p_run_at => r.run_at);
    END IF;
    PERFORM {s}.wake();
    RETURN new_id;
END $$;

-- A new job's columns from its options, checked.
CREATE FUNCTION {s}.plan(p_queue text, p_payload text, p_opts jsonb, now_ms bigint,
                         OUT state text, OUT run_at bigint, OUT priority bigint,
                         OUT max_attempts integer, OUT expires_at bigint)
LANGUAGE plpgsql AS $$
DECLARE
    bad     text;
    delay_s double precision;
    at_s    double precision;
    exp_s   double precision;
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    IF p_opts IS NULL OR jsonb_typeof(p_opts) <> 'object' THEN
        PERFORM {s}.invalid('options', 'must be a JSON object');
    END IF;
    SELECT o INTO bad FROM jsonb_object_keys(p_opts) o
    WHERE o NOT IN ('delay_s', 'run_at', 'priority', 'max_attempts', 'expires_s', 'key') LIMIT 1;
    IF bad IS NOT NULL THEN
        PERFORM {s}.invalid(bad, 'is not an enqueue option (delay_s, run_at, priority, max_attempts, expires_s, key)');
    END IF;
    PERFORM {s}.check_json('payload', p_payload);
    delay_s := (p_opts->>'delay_s')::double precision;
    at_s := (p_opts->>'run_at')::double precision;
    exp_s := (p_opts->>'expires_s')::double precision;
    IF delay_s IS NOT NULL AND at_s IS NOT NULL THEN
        PERFORM {s}.invalid('run_at', 'give either `delay` or `run_at`, not both');
    END IF;
    IF at_s IS NOT NULL THEN
        run_at := {s}.after('run_at', 0, at_s * 1000);
    ELSE
        run_at := coalesce({s}.after('delay', now_ms, delay_s * 1000), now_ms);
    END IF;
    max_attempts := coalesce((p_opts->>'max_attempts')::integer, 3);
    IF max_attempts < 1 THEN
        PERFORM {s}.invalid('max_attempts', 'must be at least 1');
    END IF;
    IF exp_s IS NOT NULL AND exp_s <= 0 THEN
        PERFORM {s}.invalid('expires', 'must be positive when given');
    END IF;
    expires_at := {s}.after('expires', greatest(run_at, now_ms), exp_s * 1000);
    priority := coalesce((p_opts->>'priority')::bigint, 0);
    state := CASE WHEN run_at > now_ms THEN 'scheduled' ELSE 'ready' END;
END $$;

-- Adds several jobs with the same options, all or none; their ids in order.
CREATE FUNCTION {s}.enqueue_many(p_queue text, p_payloads text[], p_opts jsonb DEFAULT '{}',
                                 p_now bigint DEFAULT NULL)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    r      record;
    p      text;
    ids    bigint[] := '{}';
    new_id bigint;
    publish boolean;
BEGIN
    IF p_opts ? 'key' THEN
        PERFORM {s}.invalid('key', 'an idempotency key names one job; it cannot be shared by a batch');
    END IF;
    r := {s}.plan(p_queue, 'null', p_opts, now_ms);
    publish := {s}.events_on(p_queue);
    FOREACH p IN ARRAY coalesce(p_payloads, '{}') LOOP
        PERFORM {s}.check_json('payload', p);
        INSERT INTO {s}.live (queue, payload, state, priority, run_at, max_attempts, expires_at, created_at)
        VALUES (p_queue, p, r.state, r.priority, r.run_at, r.max_attempts, r.expires_at, now_ms)
        RETURNING id INTO new_id;
        ids := ids || new_id;
        IF publish THEN
            PERFORM {s}.emit('enqueued', p_queue, new_id, now_ms, p_payload => p, p_run_at => r.run_at);
        END IF;
    END LOOP;
    IF cardinality(ids) > 0 THEN
        PERFORM {s}.wake();
    END IF;
    RETURN ids;
END $$;

-- Moves a live job to the dead table with `reason` (`error` replaces its
-- last error when given); its dead event; prunes the dead table past the
-- queue's limits (amortized).
CREATE FUNCTION {s}.bury(p_id bigint, p_reason text, p_error text, p_now bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    WITH gone AS (DELETE FROM {s}.live WHERE id = p_id RETURNING *)
    INSERT INTO {s}.dead (id, queue, payload, priority, attempts, max_attempts, idem_key,
                          last_error, reason, created_at, died_at, started_at)
    SELECT id, queue, payload, priority, attempts, max_attempts, idem_key,
           coalesce(p_error, last_error), p_reason, created_at, p_now, started_at
    FROM gone
    ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, died_at = excluded.died_at
    RETURNING queue, payload, attempts, last_error INTO d;
    IF d.queue IS NULL THEN
        RETURN false;
    END IF;
    PERFORM {s}.prune_dead(d.queue, p_now, true);
    IF {s}.events_on(d.queue) THEN
        PERFORM {s}.emit('dead', d.queue, p_id, p_now, d.attempts, d.payload,
                         p_error => d.last_error, p_reason => p_reason);
    END IF;
    RETURN true;
END $$;

-- The queue's controls row, if any.
CREATE FUNCTION {s}.controls_of(p_queue text) RETURNS {s}.queues LANGUAGE sql STABLE AS
    $$ SELECT * FROM {s}.queues WHERE queue = p_queue $$;

-- How many of `p_want` jobs a claim of `p_queue` may take now: none while
-- paused, the room left under its limit of jobs in flight and its rate.
-- With a limit or a rate, the controls row is locked until the claim's
-- transaction ends, so claimers in every process count one at a time.
CREATE FUNCTION {s}.gate(p_queue text, p_want integer, now_ms bigint, p_lock boolean,
                         OUT take integer, OUT window_start bigint, OUT events boolean)
LANGUAGE plpgsql AS $$
DECLARE
    c    {s}.queues;
    used bigint;
BEGIN
    take := p_want;
    events := false;
    c := {s}.controls_of(p_queue);
    IF c.queue IS NULL THEN
        RETURN;
    END IF;
    IF p_lock AND (c.max_in_flight IS NOT NULL OR c.rate_limit IS NOT NULL) THEN
        SELECT * INTO c FROM {s}.queues WHERE queue = p_queue FOR UPDATE;
    END IF;
    events := c.events;
    IF c.paused THEN
        take := 0;
        RETURN;
    END IF;
    IF c.max_in_flight IS NOT NULL THEN
        SELECT count(*) INTO used FROM {s}.live
        WHERE queue = p_queue AND state = 'processing' AND lease_until > now_ms;
        take := least(take, greatest(c.max_in_flight - used, 0));
    END IF;
    IF c.rate_limit IS NOT NULL THEN
        window_start := now_ms - (now_ms % greatest(c.rate_per_ms, 1));
        used := CASE WHEN c.rate_window_start = window_start THEN c.rate_count ELSE 0 END;
        take := least(take, greatest(c.rate_limit - used, 0));
    END IF;
END $$;

-- Makes due work of a queue claimable: delayed jobs whose time has come
-- become ready, expired leases are taken back (dead-lettered when out of
-- attempts), jobs past their start deadline are dead-lettered.
CREATE FUNCTION {s}.make_due(p_queue text, now_ms bigint, p_publish boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    UPDATE {s}.live SET state = 'ready'
    WHERE queue = p_queue AND state = 'scheduled' AND run_at <= now_ms;
    FOR r IN
        UPDATE {s}.live l
        SET state = 'ready', worker_id = NULL, lease_until = NULL,
            last_error = 'lease expired (worker ' || l.worker_id || ', attempt ' || l.attempts || ')'
        FROM (SELECT id FROM {s}.live
              WHERE queue = p_queue AND state = 'processing' AND lease_until <= now_ms
              ORDER BY id
              FOR UPDATE SKIP LOCKED) late
        WHERE l.id = late.id
        RETURNING l.id, l.attempts, l.max_attempts, l.last_error, l.payload
    LOOP
        IF p_publish THEN
            PERFORM {s}.emit('failed', p_queue, r.id, now_ms, r.attempts, r.payload, p_error => r.last_error);
            IF r.attempts < r.max_attempts THEN
                PERFORM {s}.emit('retried', p_queue, r.id, now_ms, r.attempts, r.payload, p_run_at => now_ms);
            END IF;
        END IF;
        IF r.attempts >= r.max_attempts THEN
            PERFORM {s}.bury(r.id, 'lease_expired', NULL, now_ms);
        END IF;
    END LOOP;
    FOR r IN
        SELECT id FROM {s}.live
        WHERE queue = p_queue AND expires_at IS NOT NULL AND state <> 'processing' AND expires_at <= now_ms
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    LOOP
        PERFORM {s}.bury(r.id, 'expired', 'expired before a worker started it', now_ms);
    END LOOP;
END $$;

-- Claims up to p_n due jobs of p_queue for p_worker, best first (higher
-- priority, earlier run_at, lower id), each leased for p_visibility_s and
-- counted as an attempt; rows other claimers hold are skipped, not waited
-- for. The queue's controls (pause, jobs in flight, rate) apply.
CREATE FUNCTION {s}.claim(p_queue text, p_worker text, p_n integer DEFAULT 1,
                          p_visibility_s double precision DEFAULT 300, p_now bigint DEFAULT NULL)
RETURNS SETOF {s}.live LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    lease  bigint;
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    PERFORM {s}.check_name('worker', p_worker);
    IF p_n IS NULL OR p_n < 1 THEN
        PERFORM {s}.invalid('n', 'must be at least 1');
    END IF;
    IF p_visibility_s IS NULL OR p_visibility_s * 1000 < 1 THEN
        PERFORM {s}.invalid('visibility_timeout', 'must be at least 1 ms');
    END IF;
    lease := {s}.after('visibility_timeout', now_ms, p_visibility_s * 1000);
    RETURN QUERY SELECT * FROM {s}.claim_in(p_queue, p_worker, p_n, lease, now_ms);
END $$;

-- claim's work, its arguments checked.
CREATE FUNCTION {s}.claim_in(p_queue text, p_worker text, p_n integer, p_lease bigint, now_ms bigint)
RETURNS SETOF {s}.live LANGUAGE plpgsql AS $$
DECLARE
    g    record;
    j    {s}.live;
    took integer := 0;
BEGIN
    g := {s}.gate(p_queue, p_n, now_ms, true);
    IF g.take = 0 THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND state = 'scheduled' AND run_at <= now_ms)
       OR EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND state = 'processing' AND lease_until <= now_ms)
       OR EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND expires_at IS NOT NULL
                  AND state <> 'processing' AND expires_at <= now_ms) THEN
        PERFORM {s}.make_due(p_queue, now_ms, g.events);
    END IF;
    FOR j IN
        UPDATE {s}.live l
        SET state = 'processing', worker_id = p_worker, lease_until = p_lease,
            attempts = l.attempts + 1, started_at = now_ms
        FROM (SELECT id FROM {s}.live
              WHERE queue = p_queue AND state = 'ready'
              ORDER BY priority DESC, run_at, id
              LIMIT g.take
              FOR UPDATE SKIP LOCKED) pick
        WHERE l.id = pick.id
        RETURNING l.*
    LOOP
        took := took + 1;
        IF g.events THEN
            PERFORM {s}.emit('started', p_queue, j.id, now_ms, j.attempts, j.payload, p_worker);
        END IF;
        RETURN NEXT j;
    END LOOP;
    IF g.window_start IS NOT NULL AND took > 0 THEN
        UPDATE {s}.queues
        SET rate_count = CASE WHEN rate_window_start = g.window_start THEN rate_count ELSE 0 END + took,
            rate_window_start = g.window_start
        WHERE queue = p_queue;
    END IF;
END $$;

-- Completes the job a current lease holds: deletes it, or moves it to the
-- completed table (with p_result) when its queue keeps finished jobs.
-- Whether the lease was current.
CREATE FUNCTION {s}.ack(p_id bigint, p_worker text, p_attempt integer, p_now bigint DEFAULT NULL,
                        p_result text DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    j      {s}.live;
    c      {s}.queues;
    n      bigint;
BEGIN
    DELETE FROM {s}.live
    WHERE id = p_id AND state = 'processing' AND worker_id = p_worker
      AND attempts = p_attempt AND lease_until > now_ms
    RETURNING * INTO j;
    IF j.id IS NULL THEN
        RETURN false;
    END IF;
    c := {s}.controls_of(j.queue);
    IF c.keep_completed_ms IS NOT NULL OR c.keep_completed_count IS NOT NULL THEN
        IF c.keep_completed_count IS NOT NULL THEN
            -- Numbered per queue, so the count kept is the difference of the
            -- first and last numbers. (The controls row stays locked until
            -- the ack commits: a count limit costs concurrent acks of the
            -- queue that; an age limit alone does not.)
            UPDATE {s}.queues SET completed_seq = completed_seq + 1 WHERE queue = j.queue
            RETURNING completed_seq INTO n;
        ELSE
            n := nextval('{s}.completed_seq');
        END IF;
        INSERT INTO {s}.completed (id, queue, payload, priority, run_at, attempts, max_attempts,
                                   worker_id, idem_key, last_error, result, created_at, started_at,
                                   completed_at, seq)
        VALUES (j.id, j.queue, j.payload, j.priority, j.run_at, j.attempts, j.max_attempts,
                j.worker_id, j.idem_key, j.last_error,
                coalesce(p_result, (SELECT value FROM {s}.results WHERE job_id = j.id)),
                j.created_at, j.started_at, now_ms, n)
        ON CONFLICT (id) DO NOTHING;
        PERFORM {s}.prune_completed(j.queue, now_ms, true);
    END IF;
    IF coalesce(c.events, false) THEN
        PERFORM {s}.emit('completed', j.queue, j.id, now_ms, j.attempts, j.payload, j.worker_id);
    END IF;
    RETURN true;
END $$;

-- Acks each lease (ids, workers, attempts in step), saving each taken
-- ack's result (p_results, kept p_ttls_ms; NULL: none); how many took.
CREATE FUNCTION {s}.ack_many(p_ids bigint[], p_workers text[], p_attempts integer[],
                             p_results text[] DEFAULT NULL, p_ttls_ms bigint[] DEFAULT NULL,
                             p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    n      integer := 0;
    i      integer;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
        IF {s}.ack(p_ids[i], p_workers[i], p_attempts[i], now_ms, p_results[i]) THEN
            n := n + 1;
            IF p_results[i] IS NOT NULL THEN
                PERFORM {s}.save_result(p_ids[i], p_results[i], p_ttls_ms[i], now_ms);
            END IF;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- What ack_and_claim returns: how many acks took (on every row), and each
-- job claimed (a row with a NULL id when none was).
CREATE TYPE {s}.acked_and_claimed AS (acked integer, job {s}.live);

-- Acks (as ack_many) then claims up to p_n jobs (as claim), in one
-- transaction: a worker's path, one commit per job.
CREATE FUNCTION {s}.ack_and_claim(p_ids bigint[], p_workers text[], p_attempts integer[],
                                  p_results text[], p_ttls_ms bigint[],
                                  p_queue text, p_worker text, p_n integer,
                                  p_visibility_s double precision, p_now bigint DEFAULT NULL)
RETURNS SETOF {s}.acked_and_claimed LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    lease  bigint;
    acked  integer;
    j      {s}.live;
    any_   boolean := false;
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    PERFORM {s}.check_name('worker', p_worker);
    IF p_visibility_s IS NULL OR p_visibility_s * 1000 < 1 THEN
        PERFORM {s}.invalid('visibility_timeout', 'must be at least 1 ms');
    END IF;
    lease := {s}.after('visibility_timeout', now_ms, p_visibility_s * 1000);
    acked := {s}.ack_many(p_ids, p_workers, p_attempts, p_results, p_ttls_ms, now_ms);
    IF p_n > 0 THEN
        FOR j IN SELECT * FROM {s}.claim_in(p_queue, p_worker, p_n, lease, now_ms) LOOP
            any_ := true;
            RETURN NEXT ROW(acked, j)::{s}.acked_and_claimed;
        END LOOP;
    END IF;
    IF NOT any_ THEN
        RETURN NEXT ROW(acked, NULL)::{s}.acked_and_claimed;
    END IF;
END $$;

-- The job a lease holds, if the lease is current (the row locked for the
-- change that follows).
CREATE FUNCTION {s}.held(p_id bigint, p_worker text, p_attempt integer, p_now bigint)
RETURNS {s}.live LANGUAGE sql AS $$
    SELECT * FROM {s}.live
    WHERE id = p_id AND state = 'processing' AND worker_id = p_worker
      AND attempts = p_attempt AND lease_until > p_now
    FOR UPDATE
$$;

-- The default retry delay after attempt p_attempt, in ms: exponential
-- (1 s, 2 s, 4 s ... at most 1 h), a random point in the upper half of
-- its step.
CREATE FUNCTION {s}.backoff_ms(p_attempt integer) RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT half + floor(random() * (half + 1))::bigint
    FROM (SELECT least(1000::bigint << least(greatest(p_attempt - 1, 0), 32), 3600000) / 2 AS half) s
$$;

-- Gives a job back for another attempt after p_delay_s (NULL: the
-- default backoff), recording p_error; out of attempts, to the dead table
-- (reason max_attempts). False, changing nothing, if the lease is not
-- current.
CREATE FUNCTION {s}.retry(p_id bigint, p_worker text, p_attempt integer,
                          p_delay_s double precision, p_error text, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms  bigint := coalesce(p_now, {s}.now_ms());
    h       {s}.live;
    due     bigint;
    publish boolean;
BEGIN
    due := {s}.after('delay', now_ms, p_delay_s * 1000);
    h := {s}.held(p_id, p_worker, p_attempt, now_ms);
    IF h.id IS NULL THEN
        RETURN false;
    END IF;
    publish := {s}.events_on(h.queue);
    IF publish THEN
        PERFORM {s}.emit('failed', h.queue, p_id, now_ms, h.attempts, h.payload, p_worker, p_error);
    END IF;
    IF h.attempts >= h.max_attempts THEN
        RETURN {s}.bury(p_id, 'max_attempts', p_error, now_ms);
    END IF;
    due := coalesce(due, now_ms + {s}.backoff_ms(h.attempts));
    UPDATE {s}.live
    SET state = CASE WHEN due > now_ms THEN 'scheduled' ELSE 'ready' END, run_at = due,
        worker_id = NULL, lease_until = NULL, last_error = p_error
    WHERE id = p_id;
    IF publish THEN
        PERFORM {s}.emit('retried', h.queue, p_id, now_ms, h.attempts, h.payload, p_worker, p_run_at => due);
    END IF;
    PERFORM {s}.wake();
    RETURN true;
END $$;

-- Sends a job straight to the dead table (reason failed). False if the
-- lease is not current.
CREATE FUNCTION {s}.fail(p_id bigint, p_worker text, p_attempt integer, p_error text,
                         p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    h      {s}.live;
BEGIN
    h := {s}.held(p_id, p_worker, p_attempt, now_ms);
    IF h.id IS NULL THEN
        RETURN false;
    END IF;
    IF {s}.events_on(h.queue) THEN
        PERFORM {s}.emit('failed', h.queue, p_id, now_ms, h.attempts, h.payload, p_worker, p_error);
    END IF;
    RETURN {s}.bury(p_id, 'failed', p_error, now_ms);
END $$;

-- Gives a claimed job back, the attempt its claim counted not counted:
-- due at p_run_at, or (NULL) at its old run_at in its old place. False if
-- the lease is not current.
CREATE FUNCTION {s}.give_back(p_id bigint, p_worker text, p_attempt integer, p_run_at bigint,
                              now_ms bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    j {s}.live;
BEGIN
    UPDATE {s}.live
    SET state = CASE WHEN p_run_at > now_ms THEN 'scheduled' ELSE 'ready' END,
        run_at = coalesce(p_run_at, run_at), worker_id = NULL, lease_until = NULL,
        attempts = attempts - 1
    WHERE id = p_id AND state = 'processing' AND worker_id = p_worker
      AND attempts = p_attempt AND lease_until > now_ms
    RETURNING * INTO j;
    IF j.id IS NULL THEN
        RETURN false;
    END IF;
    IF {s}.events_on(j.queue) THEN
        PERFORM {s}.emit('released', j.queue, p_id, now_ms, p_attempt, j.payload, p_worker, p_run_at => j.run_at);
    END IF;
    PERFORM {s}.wake();
    RETURN true;
END $$;

-- Gives a claimed job back untouched: ready at once, in its old place.
CREATE FUNCTION {s}.release(p_id bigint, p_worker text, p_attempt integer, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE sql AS
    $$ SELECT {s}.give_back(p_id, p_worker, p_attempt, NULL, coalesce(p_now, {s}.now_ms())) $$;

-- Gives a claimed job back untouched, due again after p_delay_s.
CREATE FUNCTION {s}.defer(p_id bigint, p_worker text, p_attempt integer, p_delay_s double precision,
                          p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    IF p_delay_s IS NULL THEN
        PERFORM {s}.invalid('delay', 'must be given');
    END IF;
    RETURN {s}.give_back(p_id, p_worker, p_attempt, {s}.after('delay', now_ms, p_delay_s * 1000), now_ms);
END $$;

-- Extends a lease to p_extend_s from now. False if it is not current.
CREATE FUNCTION {s}.heartbeat(p_id bigint, p_worker text, p_attempt integer,
                              p_extend_s double precision, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    until  bigint;
BEGIN
    IF p_extend_s IS NULL OR p_extend_s * 1000 < 1 THEN
        PERFORM {s}.invalid('extend', 'must be at least 1 ms');
    END IF;
    until := {s}.after('extend', now_ms, p_extend_s * 1000);
    UPDATE {s}.live SET lease_until = until
    WHERE id = p_id AND state = 'processing' AND worker_id = p_worker
      AND attempts = p_attempt AND lease_until > now_ms;
    RETURN FOUND;
END $$;

-- Removes each live job of p_ids, whatever its state; how many.
CREATE FUNCTION {s}.cancel_many(p_ids bigint[], p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    n      integer := 0;
    j      record;
BEGIN
    FOR j IN DELETE FROM {s}.live WHERE id = ANY (p_ids) RETURNING id, queue, payload LOOP
        n := n + 1;
        IF {s}.events_on(j.queue) THEN
            PERFORM {s}.emit('cancelled', j.queue, j.id, now_ms, p_payload => j.payload);
        END IF;
    END LOOP;
    IF n > 0 THEN
        PERFORM {s}.wake();
    END IF;
    RETURN n;
END $$;

-- Removes a live job, whatever its state; whether there was one.
CREATE FUNCTION {s}.cancel(p_id bigint, p_now bigint DEFAULT NULL) RETURNS boolean LANGUAGE sql AS
    $$ SELECT {s}.cancel_many(ARRAY[p_id], p_now) = 1 $$;

-- Deletes every ready job of p_queue (due ones included, not those a
-- worker holds or still scheduled for later); how many.
CREATE FUNCTION {s}.purge(p_queue text, p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    ids    bigint[];
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    SELECT array_agg(id) INTO ids FROM {s}.live
    WHERE queue = p_queue AND (state = 'ready' OR (state = 'scheduled' AND run_at <= now_ms));
    RETURN {s}.cancel_many(coalesce(ids, '{}'), now_ms);
END $$;

-- Puts a dead job back in its queue, ready now, with a fresh attempt
-- budget and the same id. P0002 if there is no such dead job, 22023 if a
-- live job holds its idempotency key.
CREATE FUNCTION {s}.requeue_dead(p_id bigint, p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    d      {s}.dead;
    other  bigint;
BEGIN
    DELETE FROM {s}.dead WHERE id = p_id RETURNING * INTO d;
    IF d.id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', COLUMN = 'dead job', DETAIL = p_id::text,
            MESSAGE = format('dead job %s not found', p_id);
    END IF;
    IF d.idem_key IS NOT NULL THEN
        SELECT id INTO other FROM {s}.live WHERE queue = d.queue AND idem_key = d.idem_key;
        IF FOUND THEN
            PERFORM {s}.invalid('id', format('live job %s already holds idempotency key %s', other, to_json(d.idem_key)));
        END IF;
    END IF;
    INSERT INTO {s}.live (id, queue, payload, state, priority, run_at, attempts, max_attempts,
                          idem_key, last_error, created_at)
    VALUES (d.id, d.queue, d.payload, 'ready', d.priority, now_ms, 0, d.max_attempts,
            d.idem_key, d.last_error, d.created_at);
    IF {s}.events_on(d.queue) THEN
        PERFORM {s}.emit('enqueued', d.queue, d.id, now_ms, p_payload => d.payload, p_run_at => now_ms);
    END IF;
    PERFORM {s}.wake();
END $$;

-- Puts back every dead job of p_queue (dead for p_reason, if given) whose
-- key no live job holds; how many.
CREATE FUNCTION {s}.requeue_dead_all(p_queue text, p_reason text DEFAULT NULL, p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    r      record;
    n      integer := 0;
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    FOR r IN SELECT d.id FROM {s}.dead d
             WHERE d.queue = p_queue AND (p_reason IS NULL OR d.reason = p_reason)
               AND (d.idem_key IS NULL OR NOT EXISTS
                    (SELECT 1 FROM {s}.live l WHERE l.queue = d.queue AND l.idem_key = d.idem_key))
             ORDER BY d.id LOOP
        PERFORM {s}.requeue_dead(r.id, now_ms);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Deletes each dead job of p_ids for good; how many there were.
CREATE FUNCTION {s}.discard_dead(p_ids bigint[]) RETURNS integer LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM {s}.dead WHERE id = ANY (p_ids) RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;

-- Dead-letters jobs (of p_queue, or of every queue) past their start
-- deadline; how many.
CREATE FUNCTION {s}.sweep_expired(p_queue text DEFAULT NULL, p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    r      record;
    n      integer := 0;
BEGIN
    FOR r IN SELECT id FROM {s}.live
             WHERE (p_queue IS NULL OR queue = p_queue) AND expires_at IS NOT NULL
               AND state <> 'processing' AND expires_at <= now_ms
             ORDER BY id FOR UPDATE SKIP LOCKED LOOP
        IF {s}.bury(r.id, 'expired', 'expired before a worker started it', now_ms) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END $$;

-- Is anything claimable in p_queue now? (A read; never while paused or at
-- its limit.)
CREATE FUNCTION {s}.has_due(p_queue text, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    IF ({s}.gate(p_queue, 1, now_ms, false)).take = 0 THEN
        RETURN false;
    END IF;
    RETURN EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND state = 'ready')
        OR EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND state = 'scheduled' AND run_at <= now_ms)
        OR EXISTS (SELECT 1 FROM {s}.live WHERE queue = p_queue AND state = 'processing' AND lease_until <= now_ms);
END $$;

-- The next moment something in p_queue becomes claimable (NULL: nothing
-- pending, or paused).
CREATE FUNCTION {s}.next_deadline(p_queue text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    c {s}.queues;
BEGIN
    c := {s}.controls_of(p_queue);
    IF c.paused THEN
        RETURN NULL;
    END IF;
    IF c.rate_limit IS NOT NULL AND c.rate_window_start IS NOT NULL AND c.rate_count >= c.rate_limit THEN
        RETURN c.rate_window_start + greatest(c.rate_per_ms, 1);
    END IF;
    RETURN least(
        (SELECT run_at FROM {s}.live WHERE queue = p_queue AND state = 'scheduled' ORDER BY run_at LIMIT 1),
        (SELECT lease_until FROM {s}.live WHERE queue = p_queue AND state = 'processing'
         ORDER BY lease_until LIMIT 1));
END $$;

-- p_queue's job counts by state.
CREATE FUNCTION {s}.queue_stats(p_queue text, OUT ready bigint, OUT scheduled bigint,
                                OUT processing bigint, OUT dead bigint, OUT completed bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM {s}.live WHERE queue = p_queue AND state = 'ready'),
           (SELECT count(*) FROM {s}.live WHERE queue = p_queue AND state = 'scheduled'),
           (SELECT count(*) FROM {s}.live WHERE queue = p_queue AND state = 'processing'),
           (SELECT count(*) FROM {s}.dead WHERE queue = p_queue),
           (SELECT count(*) FROM {s}.completed WHERE queue = p_queue)
$$;

-- ---- queue controls, retention, events ----------------------------------------

-- The controls row of p_queue, made if it had none.
CREATE FUNCTION {s}.controls_row(p_queue text, now_ms bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    INSERT INTO {s}.queues (queue, updated_at) VALUES (p_queue, now_ms)
    ON CONFLICT (queue) DO UPDATE SET updated_at = excluded.updated_at;
END $$;

-- Pauses (true) or resumes p_queue; whether that changed anything.
CREATE FUNCTION {s}.set_paused(p_queue text, p_paused boolean, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    PERFORM {s}.controls_row(p_queue, now_ms);
    UPDATE {s}.queues SET paused = p_paused WHERE queue = p_queue AND paused <> p_paused;
    IF FOUND THEN
        PERFORM {s}.wake();
        RETURN true;
    END IF;
    RETURN false;
END $$;

-- Limits (or, NULL, stops limiting) p_queue's jobs in flight.
CREATE FUNCTION {s}.set_max_in_flight(p_queue text, p_max integer, p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_max < 1 THEN
        PERFORM {s}.invalid('max_in_flight', 'must be at least 1 (pause the queue to claim nothing)');
    END IF;
    PERFORM {s}.controls_row(p_queue, coalesce(p_now, {s}.now_ms()));
    UPDATE {s}.queues SET max_in_flight = p_max WHERE queue = p_queue;
    PERFORM {s}.wake();
END $$;

-- Limits (or, NULL, stops limiting) p_queue's claims to p_limit per
-- p_per_ms window.
CREATE FUNCTION {s}.set_rate_limit(p_queue text, p_limit integer, p_per_ms bigint, p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_limit IS NOT NULL AND p_limit < 1 THEN
        PERFORM {s}.invalid('rate_limit', 'must be at least 1 (pause the queue to claim nothing)');
    END IF;
    IF p_limit IS NOT NULL AND (p_per_ms IS NULL OR p_per_ms < 1) THEN
        PERFORM {s}.invalid('per', 'must be at least 1 ms');
    END IF;
    PERFORM {s}.controls_row(p_queue, coalesce(p_now, {s}.now_ms()));
    UPDATE {s}.queues SET rate_limit = p_limit, rate_per_ms = CASE WHEN p_limit IS NOT NULL THEN p_per_ms END
    WHERE queue = p_queue;
    PERFORM {s}.wake();
END $$;

-- A retention's limits from JSON ({"max_age_s": .., "max_count": ..}, at
-- least one; NULL: none), checked, as (ms, count).
CREATE FUNCTION {s}.limits(what text, p jsonb, OUT ms bigint, OUT n bigint) LANGUAGE plpgsql AS $$
DECLARE
    bad text;
BEGIN
    IF p IS NULL OR jsonb_typeof(p) = 'null' THEN
        RETURN;
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        PERFORM {s}.invalid(what, 'must be a JSON object with max_age_s, max_count or both');
    END IF;
    SELECT k INTO bad FROM jsonb_object_keys(p) k WHERE k NOT IN ('max_age_s', 'max_count') LIMIT 1;
    IF bad IS NOT NULL THEN
        PERFORM {s}.invalid(what, format('%s is not a retention limit (max_age_s, max_count)', to_json(bad)));
    END IF;
    IF jsonb_typeof(p->'max_age_s') IS DISTINCT FROM 'number' AND jsonb_typeof(p->'max_count') IS DISTINCT FROM 'number' THEN
        PERFORM {s}.invalid(what, 'give max_age, max_count or both (or no retention at all)');
    END IF;
    ms := round((p->>'max_age_s')::numeric * 1000)::bigint;
    n := (p->>'max_count')::numeric::bigint;
    IF ms < 1 THEN
        PERFORM {s}.invalid('max_age', 'must be positive');
    END IF;
    IF n < 1 THEN
        PERFORM {s}.invalid('max_count', 'must be at least 1');
    END IF;
END $$;

-- Stores what of p_queue's finished and dead jobs is kept: each NULL (keep
-- none / prune none) or {"max_age_s": .., "max_count": ..}.
CREATE FUNCTION {s}.set_queue_retention(p_queue text, p_completed jsonb, p_dead jsonb,
                                        p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c record;
    d record;
BEGIN
    c := {s}.limits('completed', p_completed);
    d := {s}.limits('dead', p_dead);
    PERFORM {s}.controls_row(p_queue, coalesce(p_now, {s}.now_ms()));
    UPDATE {s}.queues SET keep_completed_ms = c.ms, keep_completed_count = c.n,
                          keep_dead_ms = d.ms, keep_dead_count = d.n,
                          -- Kept jobs numbered per queue go on above those kept before.
                          completed_seq = greatest(completed_seq,
                              (SELECT coalesce(max(seq), 0) FROM {s}.completed WHERE queue = p_queue))
    WHERE queue = p_queue;
END $$;

-- Prunes p_queue's kept finished jobs past its limits; with p_amortized,
-- only once a limit is passed by a 64th (by age: a 64th of the age), and
-- one batch of 4096 at most. How many were removed.
CREATE FUNCTION {s}.prune_completed(p_queue text, now_ms bigint, p_amortized boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    c     {s}.queues;
    n     integer := 0;
    k     integer;
    slack bigint;
    cut   bigint;
BEGIN
    c := {s}.controls_of(p_queue);
    IF c.keep_completed_ms IS NULL AND c.keep_completed_count IS NULL THEN
        -- A queue that keeps nothing keeps nothing.
        WITH gone AS (DELETE FROM {s}.completed WHERE queue = p_queue RETURNING 1)
        SELECT count(*) INTO n FROM gone;
        RETURN n;
    END IF;
    IF c.keep_completed_ms IS NOT NULL THEN
        slack := CASE WHEN p_amortized THEN c.keep_completed_ms / 64 ELSE 0 END;
        IF NOT p_amortized OR EXISTS (SELECT 1 FROM {s}.completed WHERE queue = p_queue
                                      AND completed_at < now_ms - c.keep_completed_ms - slack) THEN
            LOOP
                WITH gone AS (DELETE FROM {s}.completed WHERE id IN
                    (SELECT id FROM {s}.completed WHERE queue = p_queue
                     AND completed_at < now_ms - c.keep_completed_ms LIMIT 4096) RETURNING 1)
                SELECT count(*) INTO k FROM gone;
                n := n + k;
                EXIT WHEN k < 4096 OR p_amortized;
            END LOOP;
        END IF;
    END IF;
    IF c.keep_completed_count IS NOT NULL THEN
        slack := CASE WHEN p_amortized THEN c.keep_completed_count / 64 ELSE 0 END;
        -- Numbered per queue with no gaps (see ack): how many are kept is
        -- two index seeks.
        IF NOT p_amortized OR c.completed_seq - (SELECT seq FROM {s}.completed WHERE queue = p_queue
                                                 ORDER BY seq LIMIT 1) + 1
                              > c.keep_completed_count + slack THEN
            SELECT seq INTO cut FROM {s}.completed WHERE queue = p_queue
            ORDER BY seq DESC OFFSET c.keep_completed_count LIMIT 1;
            IF cut IS NOT NULL THEN
                SELECT seq INTO cut FROM {s}.completed WHERE queue = p_queue
                ORDER BY seq DESC OFFSET c.keep_completed_count - 1 LIMIT 1;
                LOOP
                    WITH gone AS (DELETE FROM {s}.completed WHERE id IN
                        (SELECT id FROM {s}.completed WHERE queue = p_queue AND seq < cut
                         ORDER BY seq LIMIT 4096) RETURNING 1)
                    SELECT count(*) INTO k FROM gone;
                    n := n + k;
                    EXIT WHEN k < 4096 OR p_amortized;
                END LOOP;
            END IF;
        END IF;
    END IF;
    RETURN n;
END $$;

-- Prunes p_queue's dead jobs past its limits (as prune_completed).
CREATE FUNCTION {s}.prune_dead(p_queue text, now_ms bigint, p_amortized boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    c     {s}.queues;
    n     integer := 0;
    k     integer;
    slack bigint;
    cut   bigint;
    cut_id bigint;
BEGIN
    c := {s}.controls_of(p_queue);
    IF c.keep_dead_ms IS NOT NULL THEN
        slack := CASE WHEN p_amortized THEN c.keep_dead_ms / 64 ELSE 0 END;
        IF NOT p_amortized OR EXISTS (SELECT 1 FROM {s}.dead WHERE queue = p_queue
                                      AND died_at < now_ms - c.keep_dead_ms - slack) THEN
            LOOP
                WITH gone AS (DELETE FROM {s}.dead WHERE id IN
                    (SELECT id FROM {s}.dead WHERE queue = p_queue
                     AND died_at < now_ms - c.keep_dead_ms LIMIT 4096) RETURNING 1)
                SELECT count(*) INTO k FROM gone;
                n := n + k;
                EXIT WHEN k < 4096 OR p_amortized;
            END LOOP;
        END IF;
    END IF;
    IF c.keep_dead_count IS NOT NULL THEN
        slack := CASE WHEN p_amortized THEN c.keep_dead_count / 64 ELSE 0 END;
        SELECT died_at INTO cut FROM {s}.dead WHERE queue = p_queue
        ORDER BY died_at DESC, id DESC OFFSET c.keep_dead_count + slack LIMIT 1;
        IF cut IS NOT NULL THEN
            SELECT died_at, id INTO cut, cut_id FROM {s}.dead WHERE queue = p_queue
            ORDER BY died_at DESC, id DESC OFFSET c.keep_dead_count - 1 LIMIT 1;
            LOOP
                WITH gone AS (DELETE FROM {s}.dead WHERE id IN
                    (SELECT id FROM {s}.dead WHERE queue = p_queue AND (died_at, id) < (cut, cut_id)
                     ORDER BY died_at, id LIMIT 4096) RETURNING 1)
                SELECT count(*) INTO k FROM gone;
                n := n + k;
                EXIT WHEN k < 4096 OR p_amortized;
            END LOOP;
        END IF;
    END IF;
    RETURN n;
END $$;

-- Applies p_queue's retention now, exactly; jobs removed.
CREATE FUNCTION {s}.prune_queue(p_queue text, p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    PERFORM {s}.check_name('queue', p_queue);
    RETURN {s}.prune_completed(p_queue, now_ms, false) + {s}.prune_dead(p_queue, now_ms, false);
END $$;

-- Turns p_queue's lifecycle events on or off. Turning them on gives the
-- events stream a 7-day retention if it has none.
CREATE FUNCTION {s}.set_events(p_queue text, p_on boolean, p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.controls_row(p_queue, coalesce(p_now, {s}.now_ms()));
    UPDATE {s}.queues SET events = p_on WHERE queue = p_queue;
    IF p_on THEN
        INSERT INTO {s}.stream_config (stream, max_age_ms, max_count)
        VALUES ('honker:events', 7 * 86400000, NULL)
        ON CONFLICT (stream) DO UPDATE SET max_age_ms = excluded.max_age_ms
        WHERE {s}.stream_config.max_age_ms IS NULL AND {s}.stream_config.max_count IS NULL;
    END IF;
END $$;

-- ---- streams -------------------------------------------------------------------

-- Appends an event to p_stream; its offset. Offsets are numbered per
-- stream by its head row, which this transaction holds until it ends: the
-- next publisher waits for it, so offsets are given in commit order and a
-- reader that has seen offset N + 1 committed has seen N.
CREATE FUNCTION {s}.publish(p_stream text, p_payload text, p_key text DEFAULT NULL,
                            p_now bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    now_ms  bigint := coalesce(p_now, {s}.now_ms());
    offset_ bigint;
BEGIN
    PERFORM {s}.check_name('stream', p_stream);
    IF p_key IS NOT NULL THEN
        PERFORM {s}.check_name('key', p_key);
    END IF;
    PERFORM {s}.check_json('payload', p_payload);
    INSERT INTO {s}.stream_heads AS h (stream, last) VALUES (p_stream, 1)
    ON CONFLICT (stream) DO UPDATE SET last = h.last + 1
    RETURNING last INTO offset_;
    INSERT INTO {s}.stream (stream, seq, event_key, payload, created_at)
    VALUES (p_stream, offset_, p_key, p_payload, now_ms);
    IF offset_ % 64 = 0 THEN
        PERFORM {s}.prune_stream(p_stream, now_ms);
    END IF;
    PERFORM {s}.wake();
    RETURN offset_;
END $$;

-- Up to p_limit events of p_stream after offset p_after, oldest first.
CREATE FUNCTION {s}.read_since(p_stream text, p_after bigint, p_limit integer DEFAULT 100)
RETURNS TABLE (seq bigint, event_key text, payload text, created_at bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.seq, e.event_key, e.payload, e.created_at FROM {s}.stream e
    WHERE e.stream = p_stream AND e.seq > p_after
    ORDER BY e.seq LIMIT p_limit
$$;

-- The newest offset of p_stream (0 if none).
CREATE FUNCTION {s}.last_offset(p_stream text) RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT coalesce((SELECT last FROM {s}.stream_heads WHERE stream = p_stream), 0) $$;

-- Saves a consumer's offset, only forward; whether it moved.
CREATE FUNCTION {s}.save_offset(p_stream text, p_consumer text, p_offset bigint, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.check_name('stream', p_stream);
    PERFORM {s}.check_name('consumer', p_consumer);
    IF p_offset < 0 THEN
        PERFORM {s}.invalid('offset', 'must not be negative');
    END IF;
    INSERT INTO {s}.stream_offsets AS o (stream, consumer, seq, updated_at)
    VALUES (p_stream, p_consumer, p_offset, coalesce(p_now, {s}.now_ms()))
    ON CONFLICT (stream, consumer) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at
    WHERE excluded.seq > o.seq;
    RETURN FOUND;
END $$;

-- A consumer's saved offset (0 if none).
CREATE FUNCTION {s}.get_offset(p_stream text, p_consumer text) RETURNS bigint LANGUAGE sql STABLE AS
    $$ SELECT coalesce((SELECT seq FROM {s}.stream_offsets
                        WHERE stream = p_stream AND consumer = p_consumer), 0) $$;

-- Stores p_stream's retention (both NULL: keep everything).
CREATE FUNCTION {s}.set_stream_retention(p_stream text, p_max_age_ms bigint, p_max_count bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {s}.check_name('stream', p_stream);
    IF p_max_age_ms < 1 THEN
        PERFORM {s}.invalid('max_age', 'must be at least 1 ms');
    END IF;
    IF p_max_count < 1 THEN
        PERFORM {s}.invalid('max_count', 'must be at least 1');
    END IF;
    INSERT INTO {s}.stream_config (stream, max_age_ms, max_count) VALUES (p_stream, p_max_age_ms, p_max_count)
    ON CONFLICT (stream) DO UPDATE SET max_age_ms = excluded.max_age_ms, max_count = excluded.max_count;
END $$;

-- Applies p_stream's retention now; events removed.
CREATE FUNCTION {s}.prune_stream(p_stream text, p_now bigint DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    c      {s}.stream_config;
    n      integer := 0;
    k      integer;
    cut    bigint;
BEGIN
    SELECT * INTO c FROM {s}.stream_config WHERE stream = p_stream;
    IF c.max_count IS NOT NULL THEN
        SELECT seq INTO cut FROM {s}.stream WHERE stream = p_stream
        ORDER BY seq DESC OFFSET c.max_count LIMIT 1;
        IF cut IS NOT NULL THEN
            WITH gone AS (DELETE FROM {s}.stream WHERE stream = p_stream AND seq <= cut RETURNING 1)
            SELECT count(*) INTO k FROM gone;
            n := n + k;
        END IF;
    END IF;
    IF c.max_age_ms IS NOT NULL THEN
        LOOP
            WITH gone AS (DELETE FROM {s}.stream WHERE stream = p_stream AND seq IN
                (SELECT seq FROM {s}.stream WHERE stream = p_stream ORDER BY seq LIMIT 4096)
                AND created_at < now_ms - c.max_age_ms RETURNING 1)
            SELECT count(*) INTO k FROM gone;
            n := n + k;
            EXIT WHEN k < 4096;
        END LOOP;
    END IF;
    RETURN n;
END $$;

-- ---- notifications ---------------------------------------------------------------

-- Stores a notification on p_channel; its id (ids in commit order).
CREATE FUNCTION {s}.notify(p_channel text, p_payload text, p_now bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    id_    bigint;
BEGIN
    PERFORM {s}.check_name('channel', p_channel);
    PERFORM {s}.check_json('payload', p_payload);
    UPDATE {s}.notify_head SET last = last + 1 RETURNING last INTO id_;
    INSERT INTO {s}.notifications (id, channel, payload, created_at) VALUES (id_, p_channel, p_payload, now_ms);
    IF id_ % 256 = 0 THEN
        -- Kept for an hour, and the newest 100,000 at most.
        DELETE FROM {s}.notifications
        WHERE id <= id_ - 100000 OR (id < id_ AND created_at < now_ms - 3600000);
    END IF;
    PERFORM {s}.wake();
    RETURN id_;
END $$;

-- ---- locks, rate limits, results -----------------------------------------------------

-- Takes lock p_name for p_ttl_ms if nobody holds it; its fencing token
-- (larger than any before), or NULL.
CREATE FUNCTION {s}.try_lock(p_name text, p_owner text, p_ttl_ms bigint, p_now bigint DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    until  bigint;
    tok    bigint;
BEGIN
    PERFORM {s}.check_name('name', p_name);
    PERFORM {s}.check_name('owner', p_owner);
    IF p_ttl_ms IS NULL OR p_ttl_ms < 1 THEN
        PERFORM {s}.invalid('ttl', 'must be at least 1 ms');
    END IF;
    until := {s}.after('ttl', now_ms, p_ttl_ms);
    -- Serializes takers of this name (a row that may not exist yet).
    PERFORM pg_advisory_xact_lock(hashtextextended('{s}.lock:' || p_name, 0));
    IF EXISTS (SELECT 1 FROM {s}.locks WHERE name = p_name AND expires_at > now_ms) THEN
        RETURN NULL;
    END IF;
    tok := nextval('{s}.lock_tokens');
    INSERT INTO {s}.locks (name, owner, token, expires_at, acquired_at)
    VALUES (p_name, p_owner, tok, until, now_ms)
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token,
        expires_at = excluded.expires_at, acquired_at = excluded.acquired_at;
    IF tok % 64 = 0 THEN
        DELETE FROM {s}.locks WHERE expires_at <= now_ms;
    END IF;
    RETURN tok;
END $$;

-- Extends a lock p_token still holds; whether it did.
CREATE FUNCTION {s}.renew_lock(p_name text, p_token bigint, p_ttl_ms bigint, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    IF p_ttl_ms IS NULL OR p_ttl_ms < 1 THEN
        PERFORM {s}.invalid('ttl', 'must be at least 1 ms');
    END IF;
    UPDATE {s}.locks SET expires_at = {s}.after('ttl', now_ms, p_ttl_ms)
    WHERE name = p_name AND token = p_token AND expires_at > now_ms;
    RETURN FOUND;
END $$;

-- Releases a lock p_token still holds; whether it did.
CREATE FUNCTION {s}.release_lock(p_name text, p_token bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {s}.locks WHERE name = p_name AND token = p_token;
    IF FOUND THEN
        PERFORM {s}.wake();
        RETURN true;
    END IF;
    RETURN false;
END $$;

-- Counts one call against p_key's fixed window of p_per_ms; allowed?
CREATE FUNCTION {s}.try_rate_limit(p_key text, p_limit bigint, p_per_ms bigint, p_now bigint DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
    start_ bigint;
    n      bigint;
BEGIN
    PERFORM {s}.check_name('key', p_key);
    IF p_limit IS NULL OR p_limit < 1 THEN
        PERFORM {s}.invalid('limit', 'must be at least 1');
    END IF;
    IF p_per_ms IS NULL OR p_per_ms < 1 THEN
        PERFORM {s}.invalid('per', 'must be at least 1 ms');
    END IF;
    start_ := now_ms - (now_ms % p_per_ms);
    INSERT INTO {s}.rate_limits AS r (key, window_start, window_end, count)
    VALUES (p_key, start_, start_ + p_per_ms, 1)
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN r.window_start = excluded.window_start THEN r.count + 1 ELSE 1 END,
        window_start = excluded.window_start, window_end = excluded.window_end
    WHERE r.window_start <> excluded.window_start OR r.count < p_limit
    RETURNING count INTO n;
    IF n IS NOT NULL AND n = 1 THEN
        DELETE FROM {s}.rate_limits WHERE key IN
            (SELECT key FROM {s}.rate_limits WHERE window_end <= now_ms ORDER BY window_end LIMIT 32);
    END IF;
    RETURN n IS NOT NULL;
END $$;

-- Stores job p_job_id's result for p_ttl_ms.
CREATE FUNCTION {s}.save_result(p_job_id bigint, p_value text, p_ttl_ms bigint, p_now bigint DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    now_ms bigint := coalesce(p_now, {s}.now_ms());
BEGIN
    PERFORM {s}.check_json('value', p_value);
    IF p_ttl_ms IS NULL OR p_ttl_ms < 1 THEN
        PERFORM {s}.invalid('ttl', 'must be at least 1 ms');
    END IF;
    INSERT INTO {s}.results (job_id, value, expires_at, created_at)
    VALUES (p_job_id, p_value, {s}.after('ttl', now_ms, p_ttl_ms), now_ms)
    ON CONFLICT (job_id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,
        created_at = excluded.created_at;
    DELETE FROM {s}.results WHERE job_id IN
        (SELECT job_id FROM {s}.results WHERE expires_at <= now_ms ORDER BY expires_at LIMIT 16);
    -- Kept with the job too, if it finished and its queue keeps finished jobs.
    UPDATE {s}.completed SET result = p_value WHERE id = p_job_id;
    PERFORM {s}.wake();
END $$;

-- Job p_job_id's unexpired result, if any.
CREATE FUNCTION {s}.get_result(p_job_id bigint, p_now bigint DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE AS
    $$ SELECT value FROM {s}.results WHERE job_id = p_job_id AND expires_at > coalesce(p_now, {s}.now_ms()) $$;

-- ---- reads for clients -----------------------------------------------------------

-- A job as JSON: live, dead, or finished and kept (NULL if none). Keys as
-- honker_get_job's on SQLite: id, queue, payload (the JSON itself), state,
-- priority, run_at_ms, attempts, max_attempts, worker_id, lease_until_ms,
-- key, last_error, dead_reason, created_at_ms, result.
CREATE FUNCTION {s}.get_job(p_id bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT jsonb_build_object('id', id, 'queue', queue, 'payload', payload::jsonb, 'state', state,
                'priority', priority, 'run_at_ms', run_at, 'attempts', attempts,
                'max_attempts', max_attempts, 'worker_id', worker_id, 'lease_until_ms', lease_until,
                'key', idem_key, 'last_error', last_error, 'dead_reason', NULL,
                'created_at_ms', created_at, 'result', NULL)
         FROM {s}.live WHERE id = p_id),
        (SELECT jsonb_build_object('id', id, 'queue', queue, 'payload', payload::jsonb, 'state', 'dead',
                'priority', priority, 'run_at_ms', died_at, 'attempts', attempts,
                'max_attempts', max_attempts, 'worker_id', NULL, 'lease_until_ms', NULL,
                'key', idem_key, 'last_error', last_error, 'dead_reason', reason,
                'created_at_ms', created_at, 'result', NULL)
         FROM {s}.dead WHERE id = p_id),
        (SELECT jsonb_build_object('id', id, 'queue', queue, 'payload', payload::jsonb, 'state', 'completed',
                'priority', priority, 'run_at_ms', run_at, 'attempts', attempts,
                'max_attempts', max_attempts, 'worker_id', worker_id, 'lease_until_ms', NULL,
                'key', idem_key, 'last_error', last_error, 'dead_reason', NULL,
                'created_at_ms', created_at, 'result', result::jsonb)
         FROM {s}.completed WHERE id = p_id))
$$;

-- The newest dead jobs of p_queue.
CREATE FUNCTION {s}.dead_jobs(p_queue text, p_limit integer DEFAULT 100) RETURNS SETOF {s}.dead
LANGUAGE sql STABLE AS
    $$ SELECT * FROM {s}.dead WHERE queue = p_queue ORDER BY died_at DESC, id DESC LIMIT p_limit $$;
