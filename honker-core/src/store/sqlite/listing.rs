//! What an operator looks at: every queue the file knows, with its counts
//! and controls, and jobs by queue, state, task, key and creation time,
//! newest first, a page at a time.

use super::{controls, queue, stream};
use crate::error::Result;
use crate::model::{
    JobFilter, JobRecord, JobState, LockInfo, QueueSummary, StreamConsumer, StreamSummary,
};
use crate::validate;
use rusqlite::{params, Connection, OptionalExtension};

/// The distinct queue names of one partial index or table, each found by
/// an index seek from the one before (a loose index scan), never a scan
/// of the jobs.
fn names_in(conn: &Connection, table: &str, condition: &str) -> Result<Vec<String>> {
    let sql = format!(
        "WITH RECURSIVE n(q) AS (
             SELECT (SELECT min(queue) FROM {table} WHERE {condition})
             UNION ALL
             SELECT (SELECT min(queue) FROM {table} WHERE {condition} AND queue > n.q)
             FROM n WHERE n.q IS NOT NULL
         )
         SELECT q FROM n WHERE q IS NOT NULL"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Every queue with jobs (live, dead or kept completed) or controls, by name, with its
/// counts and controls.
pub fn queues(conn: &Connection) -> Result<Vec<QueueSummary>> {
    let mut names = Vec::new();
    for (table, condition) in [
        ("_honker_live", "state = 'ready'"),
        ("_honker_live", "state = 'scheduled'"),
        ("_honker_live", "state = 'processing'"),
        ("_honker_dead", "1"),
        ("_honker_completed", "1"),
        ("_honker_queues", "1"),
    ] {
        names.extend(names_in(conn, table, condition)?);
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            Ok(QueueSummary {
                stats: queue::stats(conn, &name)?,
                controls: controls::get(conn, &name)?,
                name,
            })
        })
        .collect()
}

/// Every stream with events, saved offsets or retention, by name, with its
/// last offset and its consumers' offsets.
pub fn streams(conn: &Connection) -> Result<Vec<StreamSummary>> {
    let mut names = Vec::new();
    for table in [
        "_honker_stream",
        "_honker_stream_offsets",
        "_honker_stream_config",
    ] {
        names.extend(stream_names_in(conn, table)?);
    }
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let consumers = conn
                .prepare_cached(
                    "SELECT o.consumer, o.seq,
                            (SELECT count(*) FROM _honker_stream s WHERE s.stream = o.stream AND s.seq > o.seq)
                     FROM _honker_stream_offsets o WHERE o.stream = ?1 ORDER BY o.consumer",
                )?
                .query_map([&name], |r| {
                    Ok(StreamConsumer {
                        name: r.get(0)?,
                        offset: r.get(1)?,
                        lag: r.get::<_, i64>(2)?.unsigned_abs(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(StreamSummary {
                last_offset: stream::last_offset(conn, &name)?,
                consumers,
                name,
            })
        })
        .collect()
}

/// The distinct stream names of `table`, by loose index scan.
fn stream_names_in(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let sql = format!(
        "WITH RECURSIVE n(s) AS (
             SELECT (SELECT min(stream) FROM {table})
             UNION ALL
             SELECT (SELECT min(stream) FROM {table} WHERE stream > n.s) FROM n WHERE n.s IS NOT NULL
         )
         SELECT s FROM n WHERE s IS NOT NULL"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The jobs `filter` names (live, dead and kept completed), newest first.
pub fn jobs(conn: &Connection, filter: &JobFilter) -> Result<Vec<JobRecord>> {
    let limit = filter.checked_limit()?;
    let state = filter.state;
    let conditions = "(?1 IS NULL OR queue = ?1)
         AND (?2 IS NULL OR json_extract(payload, '$.task') = ?2)
         AND (?3 IS NULL OR idem_key = ?3)
         AND (?4 IS NULL OR created_at >= ?4)
         AND (?5 IS NULL OR created_at < ?5)
         AND (?6 IS NULL OR id < ?6)";
    let args = params![
        filter.queue,
        filter.task,
        filter.key,
        filter.created_from_ms,
        filter.created_to_ms,
        filter.before_id,
        limit,
        state.map(JobState::as_str),
    ];
    // Each table of jobs: its condition on the state asked for (every
    // statement binds all eight arguments), the states it holds (the others
    // skip it), its columns and its rows.
    type Mapper = fn(&rusqlite::Row<'_>) -> rusqlite::Result<JobRecord>;
    let tables: [(&str, &str, &[JobState], &str, Mapper); 3] = [
        (
            "_honker_live",
            "state <> 'done' AND (?8 IS NULL OR state = ?8)",
            &[JobState::Ready, JobState::Scheduled, JobState::Processing],
            queue::LIVE_COLS,
            queue::live_row,
        ),
        (
            "_honker_dead",
            "(?8 IS NULL OR ?8 = 'dead')",
            &[JobState::Dead],
            queue::DEAD_COLS,
            queue::dead_row,
        ),
        (
            "_honker_completed",
            "(?8 IS NULL OR ?8 = 'completed')",
            &[JobState::Completed],
            queue::COMPLETED_COLS,
            queue::completed_row,
        ),
    ];
    let mut found: Vec<JobRecord> = Vec::new();
    for (table, where_state, holds, cols, row) in tables {
        if state.is_some_and(|s| !holds.contains(&s)) {
            continue;
        }
        found.extend(
            conn.prepare_cached(&format!(
                "SELECT {cols} FROM {table} WHERE {where_state} AND {conditions}
                 ORDER BY id DESC LIMIT ?7 + 0"
            ))?
            .query_map(args, row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    found.sort_by_key(|j| std::cmp::Reverse(j.id));
    found.truncate(limit as usize);
    Ok(found)
}

/// Every lock held at `now`, by name.
pub fn locks(conn: &Connection, now: i64) -> Result<Vec<LockInfo>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, owner, token, expires_at FROM _honker_locks WHERE expires_at > ?1 ORDER BY name",
        )?
        .query_map([now], |r| {
            Ok(LockInfo {
                name: r.get(0)?,
                owner: r.get(1)?,
                token: r.get(2)?,
                expires_at_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// How many jobs the file has ever had: the largest job id (ids are never
/// reused, and the largest is kept). Three seeks.
pub fn jobs_enqueued(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(id) FROM _honker_live), 0),
                        coalesce((SELECT max(id) FROM _honker_dead), 0),
                        coalesce((SELECT max(id) FROM _honker_completed), 0))",
        )?
        .query_row([], |r| r.get(0))?)
}

/// The `run_at` of the job a claim of `queue` would take next (its ready
/// jobs' best), if any: how long the head of the queue has waited. One
/// seek in the claim's index.
pub fn queue_head(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    validate::name("queue", queue)?;
    Ok(conn
        .prepare_cached(
            "SELECT run_at FROM _honker_live WHERE queue = ?1 AND state = 'ready'
             ORDER BY priority DESC, run_at, id LIMIT 1",
        )?
        .query_row([queue], |r| r.get(0))
        .optional()?)
}
