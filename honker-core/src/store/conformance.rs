//! The conformance suite of the [`Store`] seam: what every storage engine
//! must do, checked through the trait alone, with explicit times (no clock,
//! no sleeps). [`run`] runs every check on a fresh, empty store that the
//! engine's test provides; a failed check panics with its name.
//!
//! The SQLite engine runs it in `store::sqlite`'s tests (`make test`); a
//! second engine calls [`run`] from its own tests.

use crate::model::{
    AckAndClaim, Done, EnqueueOpts, JobFilter, JobState, Lease, QueueControls, QueueRateLimit,
    QueueRetention, QueueStats, Retention, ScheduleSpec, SqlValue,
};
use crate::store::Store;
use std::time::{Duration, SystemTime};

/// A check: a name and what it asserts.
pub type Check = (&'static str, fn(&dyn Store));

/// Every check, in order.
pub const CHECKS: &[Check] = &[
    ("claim order: priority, then run_at, then id", claim_order),
    ("a delayed job is due at its run_at, to the ms", delayed_job),
    (
        "leases fence ack, retry, fail, heartbeat, release, defer",
        lease_fencing,
    ),
    ("batch ack fences each lease like ack", batch_ack_fencing),
    (
        "ack_and_claim: the ack, its result and the next claim as one",
        ack_and_claim,
    ),
    (
        "retries back off, then dead-letter with a reason",
        retries_then_dead,
    ),
    (
        "an expired lease is reclaimed, out of attempts dead",
        expired_lease,
    ),
    ("a start deadline dead-letters an unstarted job", expiry),
    ("idempotency keys name one live job", idempotency_keys),
    ("enqueue_many is all or none", enqueue_many_atomic),
    ("cancel, purge, stats, next_deadline", cancel_purge_stats),
    (
        "listing: queues with counts, jobs by filter, paged",
        listing,
    ),
    (
        "operator reads: locks held, jobs ever enqueued, a queue's head",
        operator_reads,
    ),
    (
        "bulk: requeue every dead job, cancel by ids",
        bulk_operations,
    ),
    (
        "queue controls: pause, resume, jobs in flight, claim rate",
        queue_controls,
    ),
    (
        "retention: finished jobs kept with their result, dead jobs pruned",
        retention,
    ),
    (
        "lifecycle events: every change, in its transaction, as a stream",
        lifecycle_events,
    ),
    ("streams: offsets, forward-only saves, retention", streams),
    ("notifications: ids, channels, pruning", notifications),
    ("locks: one holder, increasing fencing tokens", locks),
    ("rate limits: fixed windows", rate_limits),
    ("results: saved with a TTL", results),
    (
        "schedules: each boundary once, pause, resume, fencing",
        schedules,
    ),
    (
        "the application's SQL: execute, then query",
        application_sql,
    ),
    ("bad arguments are named errors", bad_arguments),
];

/// Makes a store on a new, empty database and hands it to its argument.
pub type Fresh<'a> = &'a dyn Fn(&mut dyn FnMut(&dyn Store));

/// Runs every check, each on a fresh store from `fresh`.
pub fn run(fresh: Fresh<'_>) {
    for (name, check) in CHECKS {
        let mut ran = false;
        fresh(&mut |s| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(s)));
            if let Err(payload) = outcome {
                panic!(
                    "conformance check failed: {name}: {}",
                    crate::panic_message(payload.as_ref())
                );
            }
            ran = true;
        });
        assert!(ran, "the store factory never ran the check {name:?}");
    }
}

const T: i64 = 1_000_000_000_000;
const VT: Duration = Duration::from_secs(30);

fn at(ms: i64) -> Option<SystemTime> {
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64))
}

fn put(s: &dyn Store, q: &str, payload: &str, opts: EnqueueOpts, now: i64) -> i64 {
    s.enqueue(q, payload, &opts, 3, now).unwrap()
}

fn ids(jobs: &[crate::model::JobRecord]) -> Vec<i64> {
    jobs.iter().map(|j| j.id).collect()
}

fn claim_order(s: &dyn Store) {
    let a = put(s, "q", "1", EnqueueOpts::default(), T);
    let b = put(
        s,
        "q",
        "2",
        EnqueueOpts {
            priority: 5,
            ..Default::default()
        },
        T,
    );
    let early = put(
        s,
        "q",
        "3",
        EnqueueOpts {
            run_at: at(T - 500),
            ..Default::default()
        },
        T,
    );
    let c = put(s, "q", "4", EnqueueOpts::default(), T);
    assert!(c > a && b > a, "ids increase");
    let got = s.claim("q", "w", 10, VT, T + 1).unwrap();
    assert_eq!(ids(&got), vec![b, early, a, c]);
    assert!(got
        .iter()
        .all(|j| j.attempts == 1 && j.state == JobState::Processing));
    assert!(s.claim("other", "w", 10, VT, T + 1).unwrap().is_empty());
}

fn delayed_job(s: &dyn Store) {
    let id = put(
        s,
        "q",
        "{}",
        EnqueueOpts {
            delay: Some(Duration::from_millis(1500)),
            ..Default::default()
        },
        T,
    );
    assert_eq!(s.get_job(id).unwrap().unwrap().state, JobState::Scheduled);
    assert!(!s.has_due("q", T + 1499).unwrap());
    assert_eq!(s.next_deadline("q").unwrap(), Some(T + 1500));
    assert!(s.claim("q", "w", 1, VT, T + 1499).unwrap().is_empty());
    assert!(s.has_due("q", T + 1500).unwrap());
    let j = s.claim("q", "w", 1, VT, T + 1500).unwrap().pop().unwrap();
    assert_eq!((j.id, j.lease_until_ms), (id, Some(T + 1500 + 30_000)));
}

fn lease_fencing(s: &dyn Store) {
    let id = put(s, "q", "{}", EnqueueOpts::default(), T);
    let j = s.claim("q", "w1", 1, VT, T).unwrap().pop().unwrap();
    let foreign = Lease::new(id, "w2", 1);
    assert!(!s.ack(foreign, T + 1).unwrap());
    assert!(!s.retry(foreign, None, "x", T + 1).unwrap());
    assert!(!s.fail(foreign, "x", T + 1).unwrap());
    assert!(!s.heartbeat(foreign, VT, T + 1).unwrap());
    assert!(!s.release(foreign, T + 1).unwrap());
    assert!(s
        .heartbeat(j.lease(), Duration::from_secs(60), T + 10_000)
        .unwrap());
    assert!(!s.ack(j.lease(), T + 70_000).unwrap(), "expired at T+70s");
    let again = s
        .claim("q", "w1", 1, VT, T + 70_000)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((again.id, again.attempts), (id, 2), "reclaimed, same name");
    assert!(!s.ack(j.lease(), T + 70_001).unwrap(), "the stale claim");
    assert!(s.release(again.lease(), T + 70_002).unwrap());
    let third = s
        .claim("q", "w1", 1, VT, T + 70_003)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(third.attempts, 2, "a release does not count the attempt");
    assert!(!s.defer(foreign, VT, T + 70_004).unwrap());
    assert!(s.defer(third.lease(), VT, T + 70_004).unwrap());
    assert!(s.claim("q", "w1", 1, VT, T + 70_005).unwrap().is_empty());
    let fourth = s
        .claim("q", "w1", 1, VT, T + 70_004 + 30_000)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(fourth.attempts, 2, "a deferral does not count the attempt");
    assert!(s.ack(fourth.lease(), T + 100_005).unwrap());
    assert!(!s.ack(fourth.lease(), T + 100_006).unwrap(), "acked twice");
    assert!(s.get_job(id).unwrap().is_none());
}

fn batch_ack_fencing(s: &dyn Store) {
    let a = put(s, "q", "1", EnqueueOpts::default(), T);
    let b = put(s, "q", "2", EnqueueOpts::default(), T);
    let first = s.claim("q", "w", 2, VT, T).unwrap();
    let stale = first.iter().find(|j| j.id == a).unwrap().clone();
    let held_b = first.iter().find(|j| j.id == b).unwrap().clone();
    assert!(s
        .retry(stale.lease(), Some(Duration::ZERO), "again", T + 1)
        .unwrap());
    let current = s.claim("q", "w", 1, VT, T + 2).unwrap().pop().unwrap();
    assert_eq!((current.id, current.attempts), (a, 2));
    assert_eq!(
        s.ack_batch(&[stale.lease(), held_b.lease()], T + 3)
            .unwrap(),
        1
    );
    assert_eq!(s.get_job(a).unwrap().unwrap().state, JobState::Processing);
    assert_eq!(s.ack_batch(&[current.lease()], T + 4).unwrap(), 1);
    assert_eq!(s.ack_batch(&[current.lease()], T + 5).unwrap(), 0);
}

fn ack_and_claim(s: &dyn Store) {
    fn op<'a>(done: &'a [Done<'a>], n: usize) -> AckAndClaim<'a> {
        AckAndClaim {
            done,
            queue: "q",
            worker: "w",
            n,
            visibility_timeout: VT,
        }
    }
    let a = put(s, "q", "1", EnqueueOpts::default(), T);
    let b = put(s, "q", "2", EnqueueOpts::default(), T);
    let c = put(s, "q", "3", EnqueueOpts::default(), T);
    let first = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    let one = |lease, result| [Done { lease, result }];
    // Acked, the result saved, the next job claimed.
    let (acked, next) = s
        .ack_and_claim(
            &op(&one(first.lease(), Some((r#"{"r":1}"#, 60_000))), 1),
            T + 1,
        )
        .unwrap();
    assert_eq!(acked, 1);
    assert_eq!(ids(&next), vec![b]);
    assert_eq!(next[0].attempts, 1);
    assert!(s.get_job(a).unwrap().is_none());
    assert_eq!(
        s.get_result(a, T + 2).unwrap().as_deref(),
        Some(r#"{"r":1}"#)
    );
    // A stale lease acks nothing and saves no result; the claim still runs.
    let stale = Lease::new(a, "w", 1);
    let (acked, next2) = s
        .ack_and_claim(&op(&one(stale, Some(("2", 60_000))), 5), T + 3)
        .unwrap();
    assert_eq!(acked, 0);
    assert_eq!(ids(&next2), vec![c]);
    assert_eq!(
        s.get_result(a, T + 4).unwrap().as_deref(),
        Some(r#"{"r":1}"#)
    );
    // n = 0: only the ack.
    let (acked, none) = s
        .ack_and_claim(&op(&one(next[0].lease(), None), 0), T + 5)
        .unwrap();
    assert!(acked == 1 && none.is_empty());
    assert_eq!(s.get_result(b, T + 6).unwrap(), None);
    // A bad result changes nothing: the job stays claimed.
    assert!(s
        .ack_and_claim(
            &op(&one(next2[0].lease(), Some(("{not json", 60_000))), 1),
            T + 7
        )
        .is_err());
    assert_eq!(s.get_job(c).unwrap().unwrap().state, JobState::Processing);
    assert_eq!(
        s.ack_and_claim(&op(&one(next2[0].lease(), None), 1), T + 8)
            .unwrap()
            .0,
        1
    );
    assert!(s.get_job(c).unwrap().is_none());
    // Several done at once (a worker that claimed ahead), each with its
    // result, a stale one among them, and several claimed in the same
    // commit.
    let d = put(s, "q", "4", EnqueueOpts::default(), T + 9);
    let e = put(s, "q", "5", EnqueueOpts::default(), T + 9);
    let f = put(s, "q", "6", EnqueueOpts::default(), T + 9);
    let g = put(s, "q", "7", EnqueueOpts::default(), T + 9);
    let held = s.claim("q", "w", 2, VT, T + 10).unwrap();
    assert_eq!(ids(&held), vec![d, e]);
    let done = [
        Done {
            lease: held[0].lease(),
            result: Some(("\"d\"", 60_000)),
        },
        Done {
            lease: Lease::new(d, "other", 1),
            result: Some(("\"x\"", 60_000)),
        },
        Done {
            lease: held[1].lease(),
            result: None,
        },
    ];
    let (acked, got) = s.ack_and_claim(&op(&done, 3), T + 11).unwrap();
    assert_eq!(acked, 2);
    assert_eq!(ids(&got), vec![f, g]);
    assert!(s.get_job(d).unwrap().is_none() && s.get_job(e).unwrap().is_none());
    assert_eq!(s.get_result(d, T + 12).unwrap().as_deref(), Some("\"d\""));
    assert_eq!(s.get_result(e, T + 12).unwrap(), None);
    // A bad result among several undoes every ack of the commit.
    let bad = [
        Done {
            lease: got[0].lease(),
            result: None,
        },
        Done {
            lease: got[1].lease(),
            result: Some(("{", 60_000)),
        },
    ];
    assert!(s.ack_and_claim(&op(&bad, 0), T + 13).is_err());
    assert_eq!(s.get_job(f).unwrap().unwrap().state, JobState::Processing);
}

fn retries_then_dead(s: &dyn Store) {
    let id = put(
        s,
        "q",
        "{}",
        EnqueueOpts {
            max_attempts: Some(2),
            ..Default::default()
        },
        T,
    );
    let j = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s
        .retry(
            j.lease(),
            Some(Duration::from_millis(500)),
            "boom 1",
            T + 10
        )
        .unwrap());
    let r = s.get_job(id).unwrap().unwrap();
    assert_eq!(
        (r.state, r.run_at_ms, r.last_error.as_deref()),
        (JobState::Scheduled, T + 510, Some("boom 1"))
    );
    let j = s.claim("q", "w", 1, VT, T + 510).unwrap().pop().unwrap();
    assert!(s.retry(j.lease(), None, "boom 2", T + 600).unwrap());
    let dead = s.get_job(id).unwrap().unwrap();
    assert_eq!(
        (
            dead.state,
            dead.dead_reason.as_deref(),
            dead.last_error.as_deref()
        ),
        (JobState::Dead, Some("max_attempts"), Some("boom 2"))
    );
    assert_eq!(ids(&s.dead_jobs("q", 10).unwrap()), vec![id]);
    s.requeue_dead(id, T + 700).unwrap();
    let back = s.get_job(id).unwrap().unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Ready, 0));
    assert_eq!(s.requeue_dead(id, T + 701).unwrap_err().code(), "not_found");
    let j = s.claim("q", "w", 1, VT, T + 702).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "bad input", T + 703).unwrap());
    assert_eq!(
        s.get_job(id).unwrap().unwrap().dead_reason.as_deref(),
        Some("failed")
    );
}

fn expired_lease(s: &dyn Store) {
    let id = put(
        s,
        "q",
        "{}",
        EnqueueOpts {
            max_attempts: Some(1),
            ..Default::default()
        },
        T,
    );
    s.claim("q", "w", 1, Duration::from_millis(100), T).unwrap();
    assert!(s.has_due("q", T + 100).unwrap(), "an expired lease is due");
    assert!(s.claim("q", "w", 1, VT, T + 100).unwrap().is_empty());
    let dead = s.get_job(id).unwrap().unwrap();
    assert_eq!(dead.dead_reason.as_deref(), Some("lease_expired"));
}

fn expiry(s: &dyn Store) {
    let opts = EnqueueOpts {
        expires: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let stale = put(s, "q", "1", opts.clone(), T);
    let other = put(s, "idle", "2", opts, T);
    assert!(s.claim("q", "w", 1, VT, T + 1000).unwrap().is_empty());
    assert_eq!(
        s.get_job(stale).unwrap().unwrap().dead_reason.as_deref(),
        Some("expired")
    );
    assert_eq!(s.sweep_expired(Some("idle"), T + 999).unwrap(), 0);
    assert_eq!(s.sweep_expired(None, T + 1000).unwrap(), 1);
    assert_eq!(s.get_job(other).unwrap().unwrap().state, JobState::Dead);
}

fn idempotency_keys(s: &dyn Store) {
    let keyed = EnqueueOpts {
        key: Some("k".into()),
        ..Default::default()
    };
    let a = put(s, "q", "1", keyed.clone(), T);
    assert_eq!(put(s, "q", "2", keyed.clone(), T), a, "the live job's id");
    assert_ne!(put(s, "other", "3", keyed.clone(), T), a, "per queue");
    let j = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert_eq!(put(s, "q", "4", keyed.clone(), T + 1), a, "live while held");
    assert!(s.ack(j.lease(), T + 2).unwrap());
    assert_ne!(put(s, "q", "5", keyed, T + 3), a, "free once done");
}

fn enqueue_many_atomic(s: &dyn Store) {
    let bad: Vec<String> = vec!["1".into(), "{bad".into()];
    let e = s
        .enqueue_many("q", &bad, &EnqueueOpts::default(), 3, T)
        .unwrap_err();
    assert_eq!(e.code(), "invalid_json");
    assert_eq!(s.queue_stats("q").unwrap().ready, 0);
    let good: Vec<String> = vec!["1".into(), "2".into(), "3".into()];
    let got = s
        .enqueue_many("q", &good, &EnqueueOpts::default(), 3, T)
        .unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[1] > w[0]));
    let keyed = EnqueueOpts {
        key: Some("k".into()),
        ..Default::default()
    };
    assert_eq!(
        s.enqueue_many("q", &good, &keyed, 3, T).unwrap_err().code(),
        "invalid_argument"
    );
}

fn cancel_purge_stats(s: &dyn Store) {
    let a = put(s, "q", "1", EnqueueOpts::default(), T);
    let later = put(
        s,
        "q",
        "2",
        EnqueueOpts {
            delay: Some(Duration::from_secs(60)),
            ..Default::default()
        },
        T,
    );
    put(s, "q", "3", EnqueueOpts::default(), T);
    put(s, "q", "4", EnqueueOpts::default(), T);
    let held = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert_eq!(held.id, a);
    assert_eq!(
        s.queue_stats("q").unwrap(),
        QueueStats {
            ready: 2,
            scheduled: 1,
            processing: 1,
            dead: 0,
            completed: 0,
        }
    );
    assert_eq!(s.next_deadline("q").unwrap(), Some(T + 30_000));
    assert!(s.cancel(later, T).unwrap());
    assert!(!s.cancel(later, T).unwrap());
    let due = put(
        s,
        "q",
        "5",
        EnqueueOpts {
            delay: Some(Duration::from_secs(1)),
            ..Default::default()
        },
        T,
    );
    assert_eq!(
        s.purge("q", T + 1_000).unwrap(),
        3,
        "two ready, one due now"
    );
    assert!(s.get_job(due).unwrap().is_none());
    assert_eq!(s.queue_stats("q").unwrap().processing, 1);
    assert!(s.ack(held.lease(), T + 1).unwrap());
    assert_eq!(s.queue_stats("q").unwrap(), QueueStats::default());
}

fn listing(s: &dyn Store) {
    assert!(s.queues().unwrap().is_empty(), "a fresh file has no queues");
    let task = |t: &str, n: i64| format!(r#"{{"task":"{t}","args":[{n}]}}"#);
    let keyed = EnqueueOpts {
        key: Some("k1".into()),
        ..Default::default()
    };
    let a1 = put(s, "a", &task("mail", 1), EnqueueOpts::default(), T);
    let a2 = put(s, "a", &task("sms", 2), keyed, T + 10);
    let a3 = put(
        s,
        "a",
        &task("mail", 3),
        EnqueueOpts {
            delay: Some(Duration::from_secs(60)),
            ..Default::default()
        },
        T + 20,
    );
    let b1 = put(
        s,
        "b",
        "7",
        EnqueueOpts {
            max_attempts: Some(1),
            ..Default::default()
        },
        T + 30,
    );
    let j = s.claim("b", "w", 1, VT, T + 30).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "boom", T + 30).unwrap());
    let a4 = put(s, "a", &task("mail", 4), EnqueueOpts::default(), T + 40);
    let held = s.claim("a", "w", 1, VT, T + 40).unwrap().pop().unwrap();
    assert_eq!(held.id, a1);
    s.set_paused("c", true, T).unwrap();

    let q = s.queues().unwrap();
    let names: Vec<&str> = q.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "jobs, the dead, or controls");
    assert_eq!(
        q[0].stats,
        QueueStats {
            ready: 2,
            scheduled: 1,
            processing: 1,
            dead: 0,
            completed: 0,
        }
    );
    assert_eq!(q[1].stats.dead, 1);
    assert!(q[2].controls.paused && q[2].stats == QueueStats::default());

    let list = |f: JobFilter| ids(&s.list_jobs(&f).unwrap());
    assert_eq!(
        list(JobFilter::default()),
        [a4, b1, a3, a2, a1],
        "newest first, the dead too"
    );
    let in_a = |f: JobFilter| JobFilter {
        queue: Some("a".into()),
        ..f
    };
    assert_eq!(list(in_a(JobFilter::default())), [a4, a3, a2, a1]);
    let state = |st| JobFilter {
        state: Some(st),
        ..Default::default()
    };
    assert_eq!(list(state(JobState::Ready)), [a4, a2]);
    assert_eq!(list(state(JobState::Scheduled)), [a3]);
    assert_eq!(list(state(JobState::Processing)), [a1]);
    assert_eq!(list(state(JobState::Dead)), [b1]);
    let mail = JobFilter {
        task: Some("mail".into()),
        ..Default::default()
    };
    assert_eq!(list(mail.clone()), [a4, a3, a1]);
    assert_eq!(
        list(JobFilter {
            key: Some("k1".into()),
            ..Default::default()
        }),
        [a2]
    );
    assert_eq!(
        list(JobFilter {
            created_from_ms: Some(T + 10),
            created_to_ms: Some(T + 30),
            ..Default::default()
        }),
        [a3, a2],
        "from inclusive, to exclusive"
    );
    // Pages of two, each after the last id of the one before.
    let page = |before| JobFilter {
        limit: 2,
        before_id: before,
        ..Default::default()
    };
    assert_eq!(list(page(None)), [a4, b1]);
    assert_eq!(list(page(Some(b1))), [a3, a2]);
    assert_eq!(list(page(Some(a2))), [a1]);
    assert!(list(page(Some(a1))).is_empty());

    assert!(s.streams().unwrap().is_empty());
    let o1 = s.publish("orders", None, "1", T).unwrap();
    s.publish("audit", None, "2", T).unwrap();
    s.publish("orders", None, "3", T).unwrap();
    let o3 = s.publish("orders", None, "4", T).unwrap();
    assert!(s.save_offset("orders", "billing", o1, T).unwrap());
    assert!(s.save_offset("orders", "audit-log", o3, T).unwrap());
    s.set_retention(
        "quiet",
        Retention {
            max_age: None,
            max_count: Some(10),
        },
    )
    .unwrap();
    let st = s.streams().unwrap();
    let names: Vec<&str> = st.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["audit", "orders", "quiet"],
        "events, offsets or retention"
    );
    assert_eq!(st[1].last_offset, o3);
    let consumer = |name: &str, offset, lag| crate::model::StreamConsumer {
        name: name.into(),
        offset,
        lag,
    };
    assert_eq!(
        st[1].consumers,
        [consumer("audit-log", o3, 0), consumer("billing", o1, 2)],
        "the lag counts this stream's events only"
    );
    assert_eq!((st[2].last_offset, st[2].consumers.len()), (0, 0));
    assert!(s
        .list_jobs(&JobFilter {
            queue: Some(String::new()),
            ..Default::default()
        })
        .is_err());
}

fn bulk_operations(s: &dyn Store) {
    let once = EnqueueOpts {
        max_attempts: Some(1),
        ..Default::default()
    };
    let keyed = |k: &str| EnqueueOpts {
        key: Some(k.into()),
        ..once.clone()
    };
    let failed = put(s, "q", "1", once.clone(), T);
    let expired = put(s, "q", "2", once.clone(), T);
    let taken = put(s, "q", "3", keyed("k"), T);
    let elsewhere = put(s, "other", "4", once.clone(), T);
    for j in s.claim("q", "w", 3, VT, T).unwrap() {
        if j.id != expired {
            assert!(s.fail(j.lease(), "boom", T).unwrap());
        }
    }
    let j = s.claim("other", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "boom", T).unwrap());
    // The lease lapses: out of attempts, dead for another reason.
    assert!(s.claim("q", "w", 1, VT, T + 31_000).unwrap().is_empty());
    let holder = put(s, "q", "5", keyed("k"), T + 31_000);
    assert_eq!(s.queue_stats("q").unwrap().dead, 3);

    assert_eq!(
        s.requeue_dead_all("q", Some("lease_expired"), T + 32_000)
            .unwrap(),
        1
    );
    assert_eq!(s.get_job(expired).unwrap().unwrap().state, JobState::Ready);
    assert_eq!(
        s.requeue_dead_all("q", None, T + 32_000).unwrap(),
        1,
        "the keyed one stays dead: a live job holds its key"
    );
    assert_eq!(s.get_job(failed).unwrap().unwrap().state, JobState::Ready);
    assert_eq!(s.get_job(taken).unwrap().unwrap().state, JobState::Dead);
    assert_eq!(s.get_job(elsewhere).unwrap().unwrap().state, JobState::Dead);
    assert_eq!(s.requeue_dead_all("q", Some("failed"), T).unwrap(), 0);

    let held = s.claim("q", "w", 1, VT, T + 32_000).unwrap().pop().unwrap();
    assert_eq!(
        s.cancel_many(&[failed, expired, holder, taken, 999_999], T)
            .unwrap(),
        3,
        "live ones only, held or not"
    );
    assert!(!s.ack(held.lease(), T + 32_000).unwrap(), "cancelled");
    assert_eq!(s.queue_stats("q").unwrap().ready, 0);
    assert_eq!(s.cancel_many(&[], T).unwrap(), 0);
    assert!(s.requeue_dead_all("", None, T).is_err());
    // Discarding dead jobs deletes them for good; live ids and unknown ones
    // are not dead jobs.
    let doomed = put(s, "d", "1", EnqueueOpts::default(), T);
    let j = s.claim("d", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "x", T).unwrap());
    let live = put(s, "d", "2", EnqueueOpts::default(), T);
    assert_eq!(s.discard_dead(&[doomed, live, 999_999]).unwrap(), 1);
    assert_eq!(s.get_job(doomed).unwrap(), None);
    assert_eq!(s.get_job(live).unwrap().unwrap().state, JobState::Ready);
    assert_eq!(s.discard_dead(&[doomed]).unwrap(), 0);
}

fn retention(s: &dyn Store) {
    // By default an acked job is gone.
    let gone = put(s, "q", "0", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s.ack(j.lease(), T + 1).unwrap());
    assert_eq!(s.get_job(gone).unwrap(), None);

    let keep = QueueRetention {
        completed: Some(Retention {
            max_age: None,
            max_count: Some(64),
        }),
        dead: Some(Retention {
            max_age: Some(Duration::from_secs(60)),
            max_count: None,
        }),
    };
    s.set_queue_retention("q", keep, T).unwrap();
    assert_eq!(s.queue_controls("q").unwrap().retention, keep);

    // A kept job has its result, attempts, timings and last error.
    let id = put(s, "q", "{\"n\":1}", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T + 10).unwrap().pop().unwrap();
    assert!(s
        .retry(j.lease(), Some(Duration::ZERO), "boom", T + 20)
        .unwrap());
    let j = s.claim("q", "w", 1, VT, T + 30).unwrap().pop().unwrap();
    assert_eq!(j.started_at_ms, Some(T + 30));
    let done = [Done {
        lease: j.lease(),
        result: Some(("{\"ok\":true}", 60_000)),
    }];
    let op = AckAndClaim {
        done: &done,
        queue: "q",
        worker: "w",
        n: 1,
        visibility_timeout: VT,
    };
    assert_eq!(s.ack_and_claim(&op, T + 40).unwrap().0, 1);
    let kept = s.get_job(id).unwrap().expect("kept");
    assert_eq!(kept.state, JobState::Completed);
    assert_eq!(
        (
            kept.attempts,
            kept.last_error.as_deref(),
            kept.result.as_deref()
        ),
        (2, Some("boom"), Some("{\"ok\":true}"))
    );
    assert_eq!(
        (kept.created_at_ms, kept.started_at_ms, kept.completed_at_ms),
        (T, Some(T + 30), Some(T + 40))
    );
    assert_eq!(kept.worker_id.as_deref(), Some("w"));
    // A stale lease keeps nothing twice, and a result saved after the ack
    // is kept with the job.
    assert!(!s.ack(j.lease(), T + 41).unwrap());
    s.save_result(id, "2", 60_000, T + 42).unwrap();
    assert_eq!(s.get_job(id).unwrap().unwrap().result.as_deref(), Some("2"));
    assert_eq!(s.queue_stats("q").unwrap().completed, 1);
    let listed = s
        .list_jobs(&JobFilter {
            state: Some(JobState::Completed),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&listed), [id]);

    // The count limit: at most 64 + 64/64 kept, the oldest pruned.
    let many: Vec<i64> = (0..100)
        .map(|i| put(s, "q", &i.to_string(), EnqueueOpts::default(), T + 100))
        .collect();
    for (i, _) in many.iter().enumerate() {
        let j = s.claim("q", "w", 1, VT, T + 100).unwrap().pop().unwrap();
        assert!(s.ack(j.lease(), T + 200 + i as i64).unwrap());
    }
    let n = s.queue_stats("q").unwrap().completed;
    assert!((64..=65).contains(&n), "{n} kept");
    assert!(s.get_job(id).unwrap().is_none(), "the oldest went first");
    assert!(s.get_job(many[99]).unwrap().is_some());
    assert_eq!(s.prune_queue("q", T + 300).unwrap() as u64, n - 64);
    assert_eq!(s.queue_stats("q").unwrap().completed, 64);
    // 101 were kept in all: the newest 64 are many[36..].
    assert_eq!(
        s.get_job(many[36]).unwrap().unwrap().state,
        JobState::Completed
    );
    assert!(s.get_job(many[35]).unwrap().is_none());

    // The dead keep 60 s: pruned once 1/64 past it, by the next death.
    let d1 = put(s, "q", "1", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "x", T).unwrap());
    let d2 = put(s, "q", "2", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T + 60_000).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "x", T + 60_000).unwrap());
    assert!(s.get_job(d1).unwrap().is_some(), "within the slack");
    let d3 = put(s, "q", "3", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T + 62_000).unwrap().pop().unwrap();
    assert!(s.fail(j.lease(), "x", T + 62_000).unwrap());
    assert!(s.get_job(d1).unwrap().is_none(), "past 60 s + 1/64");
    assert_eq!(s.get_job(d2).unwrap().unwrap().state, JobState::Dead);
    assert_eq!(s.get_job(d3).unwrap().unwrap().state, JobState::Dead);
    assert_eq!(s.prune_queue("q", T + 120_001).unwrap(), 1, "d2, exactly");

    // Turning it off keeps what is kept and keeps nothing new.
    s.set_queue_retention("q", QueueRetention::default(), T)
        .unwrap();
    let id = put(s, "q", "1", EnqueueOpts::default(), T);
    let j = s.claim("q", "w", 1, VT, T).unwrap().pop().unwrap();
    assert!(s.ack(j.lease(), T).unwrap());
    assert!(s.get_job(id).unwrap().is_none());
    assert_eq!(s.queue_stats("q").unwrap().completed, 64);

    // A limit that keeps nothing is refused, and so is a zero count.
    for bad in [
        Retention::default(),
        Retention {
            max_age: None,
            max_count: Some(0),
        },
        Retention {
            max_age: Some(Duration::ZERO),
            max_count: None,
        },
    ] {
        let r = QueueRetention {
            completed: Some(bad),
            dead: None,
        };
        let e = s.set_queue_retention("q", r, T).unwrap_err();
        assert_eq!(e.code(), "invalid_argument", "{e}");
    }
}

fn operator_reads(s: &dyn Store) {
    assert_eq!(s.jobs_enqueued().unwrap(), 0);
    assert_eq!(s.queue_head("q").unwrap(), None);
    let a = put(s, "q", "1", EnqueueOpts::default(), T);
    put(
        s,
        "q",
        "2",
        EnqueueOpts {
            priority: 5,
            run_at: at(T + 7),
            ..Default::default()
        },
        T,
    );
    let c = put(s, "q", "3", EnqueueOpts::default(), T + 1);
    assert_eq!(
        s.queue_head("q").unwrap(),
        Some(T),
        "a; the other is not due yet"
    );
    let j = s.claim("q", "w", 1, VT, T + 10).unwrap().pop().unwrap();
    assert_eq!(j.priority, 5, "due now, and first");
    assert_eq!(s.queue_head("q").unwrap(), Some(T), "a again");
    assert!(s.ack(j.lease(), T + 11).unwrap());
    assert!(s.cancel(c, T).unwrap());
    assert_eq!(
        s.jobs_enqueued().unwrap(),
        c,
        "the largest id, though it is gone"
    );
    assert!(a < c);
    assert_eq!(s.try_lock("b", "x", 1_000, T).unwrap(), Some(1));
    assert_eq!(s.try_lock("a", "y", 5_000, T).unwrap(), Some(2));
    let held = s.locks(T + 2_000).unwrap();
    assert_eq!(
        held.iter()
            .map(|l| (l.name.as_str(), l.owner.as_str()))
            .collect::<Vec<_>>(),
        [("a", "y")],
        "by name, lapsed ones left out"
    );
}

/// The events stream's events after `after`: (kind, job id, the rest).
fn events_after(s: &dyn Store, after: i64) -> Vec<(String, i64, serde_json::Value)> {
    s.read_since(crate::model::EVENTS_STREAM, after, 1000)
        .unwrap()
        .into_iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
            assert_eq!(e.key.as_deref(), v["queue"].as_str(), "keyed by queue");
            (
                v["type"].as_str().unwrap().to_string(),
                v["job_id"].as_i64().unwrap(),
                v,
            )
        })
        .collect()
}

fn lifecycle_events(s: &dyn Store) {
    let kinds = |after| -> Vec<(String, i64)> {
        events_after(s, after)
            .into_iter()
            .map(|(k, id, _)| (k, id))
            .collect()
    };
    let ev = |k: &str, id: i64| (k.to_string(), id);
    // A queue publishes nothing until asked.
    put(s, "q", "0", EnqueueOpts::default(), T);
    assert!(kinds(0).is_empty());
    s.set_events("q", true, T).unwrap();
    assert!(s.queue_controls("q").unwrap().events);
    let task = crate::worker::envelope::encode("send", Some("[1]"), None).unwrap();
    let a = put(s, "q", &task, EnqueueOpts::default(), T);
    let b = put(s, "q", "2", EnqueueOpts::default(), T);
    put(s, "quiet", "3", EnqueueOpts::default(), T);
    let all = events_after(s, 0);
    assert_eq!(all.len(), 2, "the quiet queue publishes nothing");
    assert_eq!(
        (
            all[0].2["task"].as_str(),
            all[0].2["run_at_ms"].as_i64(),
            all[0].2["at_ms"].as_i64()
        ),
        (Some("send"), Some(T), Some(T))
    );
    let mark = s.last_offset(crate::model::EVENTS_STREAM).unwrap();

    // Claimed, acked; retried then dead; released; cancelled.
    let jobs = s.claim("q", "w", 3, VT, T + 1).unwrap();
    assert_eq!(ids(&jobs)[1..], [a, b]);
    let zero = jobs[0].id;
    assert!(s.ack(jobs[1].lease(), T + 2).unwrap());
    assert!(s
        .retry(jobs[2].lease(), Some(Duration::ZERO), "boom", T + 3)
        .unwrap());
    assert!(s.release(jobs[0].lease(), T + 4).unwrap());
    let again = s.claim("q", "w", 2, VT, T + 5).unwrap();
    assert!(s
        .fail(
            again.iter().find(|j| j.id == b).unwrap().lease(),
            "bad",
            T + 6
        )
        .unwrap());
    assert!(s.cancel(zero, T + 7).unwrap());
    assert_eq!(
        kinds(mark),
        [
            ev("started", zero),
            ev("started", a),
            ev("started", b),
            ev("completed", a),
            ev("failed", b),
            ev("retried", b),
            ev("released", zero),
            ev("started", zero),
            ev("started", b),
            ev("failed", b),
            ev("dead", b),
            ev("cancelled", zero),
        ]
    );
    let detail = events_after(s, mark);
    let started = &detail[2].2;
    assert_eq!(
        (started["attempt"].as_u64(), started["worker_id"].as_str()),
        (Some(1), Some("w"))
    );
    assert_eq!(detail[3].2["task"], "send");
    assert_eq!(
        (
            detail[4].2["error"].as_str(),
            detail[5].2["run_at_ms"].as_i64()
        ),
        (Some("boom"), Some(T + 3))
    );
    assert_eq!(
        (
            detail[10].2["reason"].as_str(),
            detail[10].2["attempt"].as_u64()
        ),
        (Some("failed"), Some(2))
    );

    // Put back from the dead: enqueued again. A lease that lapses with no
    // attempt left: failed, then dead.
    let mark = s.last_offset(crate::model::EVENTS_STREAM).unwrap();
    s.requeue_dead(b, T + 10).unwrap();
    let one = put(
        s,
        "q",
        "4",
        EnqueueOpts {
            max_attempts: Some(1),
            priority: 9,
            ..Default::default()
        },
        T + 10,
    );
    let held = s.claim("q", "w", 1, VT, T + 11).unwrap();
    assert_eq!(ids(&held), [one]);
    s.claim("q", "w2", 1, VT, T + 11 + 30_001).unwrap();
    assert_eq!(
        kinds(mark),
        [
            ev("enqueued", b),
            ev("enqueued", one),
            ev("started", one),
            ev("failed", one),
            ev("dead", one),
            ev("started", b),
        ]
    );
    assert_eq!(events_after(s, mark)[4].2["reason"], "lease_expired");

    // An event exists if and only if its change committed: a failing batch
    // enqueue publishes nothing.
    let mark = s.last_offset(crate::model::EVENTS_STREAM).unwrap();
    let bad = s.enqueue_many(
        "q",
        &["1".to_string(), "not json".to_string()],
        &EnqueueOpts::default(),
        3,
        T,
    );
    assert!(bad.is_err());
    assert!(kinds(mark).is_empty());
    s.set_events("q", false, T).unwrap();
    put(s, "q", "5", EnqueueOpts::default(), T);
    assert!(kinds(mark).is_empty(), "turned off");
}

fn queue_controls(s: &dyn Store) {
    assert_eq!(s.queue_controls("q").unwrap(), QueueControls::default());
    let jobs: Vec<i64> = (0..5)
        .map(|i| put(s, "q", &i.to_string(), EnqueueOpts::default(), T))
        .collect();
    let later = put(
        s,
        "q",
        "5",
        EnqueueOpts {
            delay: Some(Duration::from_secs(60)),
            ..Default::default()
        },
        T,
    );
    // Paused: nothing is claimed, nothing is due, nothing to wait for but
    // the resume; enqueues go on; other queues are not touched.
    assert!(s.set_paused("q", true, T).unwrap());
    assert!(!s.set_paused("q", true, T).unwrap(), "already paused");
    assert!(s.queue_controls("q").unwrap().paused);
    assert!(s.claim("q", "w", 10, VT, T).unwrap().is_empty());
    assert!(!s.has_due("q", T).unwrap());
    assert_eq!(s.next_deadline("q").unwrap(), None);
    let added = put(s, "q", "6", EnqueueOpts::default(), T);
    let op = AckAndClaim {
        done: &[],
        queue: "q",
        worker: "w",
        n: 3,
        visibility_timeout: VT,
    };
    assert_eq!(s.ack_and_claim(&op, T).unwrap(), (0, vec![]));
    put(s, "other", "7", EnqueueOpts::default(), T);
    assert_eq!(s.claim("other", "w", 1, VT, T).unwrap().len(), 1);
    assert!(s.set_paused("q", false, T).unwrap());
    assert!(!s.set_paused("q", false, T).unwrap(), "already running");
    assert!(s.has_due("q", T).unwrap());
    assert_eq!(s.next_deadline("q").unwrap(), Some(T + 60_000));

    // At most two leased at once, across workers.
    s.set_max_in_flight("q", Some(2), T).unwrap();
    assert_eq!(
        s.queue_controls("q").unwrap(),
        QueueControls {
            paused: false,
            max_in_flight: Some(2),
            rate_limit: None,
            retention: QueueRetention::default(),
            events: false,
        }
    );
    let first = s.claim("q", "w1", 10, VT, T).unwrap();
    assert_eq!(ids(&first), jobs[..2].to_vec());
    assert!(s.claim("q", "w2", 1, VT, T).unwrap().is_empty());
    assert!(!s.has_due("q", T).unwrap(), "at the limit");
    assert!(s.ack(first[0].lease(), T).unwrap());
    assert!(s.has_due("q", T).unwrap());
    let done = [Done {
        lease: first[1].lease(),
        result: None,
    }];
    let op = AckAndClaim {
        done: &done,
        queue: "q",
        worker: "w2",
        n: 5,
        visibility_timeout: VT,
    };
    let (acked, next) = s.ack_and_claim(&op, T).unwrap();
    assert_eq!(
        (acked, ids(&next)),
        (1, jobs[2..4].to_vec()),
        "the ack made room first"
    );
    // Expired leases do not count: their jobs are claimable again.
    let after = T + VT.as_millis() as i64;
    let again = s.claim("q", "w3", 5, VT, after).unwrap();
    assert_eq!(ids(&again), jobs[2..4].to_vec());
    assert!(again.iter().all(|j| j.attempts == 2));
    // Lifted: the rest at once.
    s.set_max_in_flight("q", None, after).unwrap();
    let rest = s.claim("q", "w3", 10, VT, after).unwrap();
    assert_eq!(
        rest.len(),
        2,
        "{:?} and the job added while paused",
        jobs[4]
    );
    assert!(rest.iter().any(|j| j.id == added));
    assert!(s.get_job(later).unwrap().is_some());

    // At most three claims per fixed second, across workers.
    let r: Vec<i64> = (0..8)
        .map(|i| put(s, "r", &i.to_string(), EnqueueOpts::default(), T))
        .collect();
    let rate = QueueRateLimit {
        limit: 3,
        per: Duration::from_secs(1),
    };
    s.set_rate_limit("r", Some(rate), T).unwrap();
    assert_eq!(s.queue_controls("r").unwrap().rate_limit, Some(rate));
    let window = T - T.rem_euclid(1000);
    assert_eq!(ids(&s.claim("r", "w1", 2, VT, window).unwrap()), r[..2]);
    assert_eq!(
        ids(&s.claim("r", "w2", 5, VT, window + 1).unwrap()),
        r[2..3]
    );
    assert!(s.claim("r", "w2", 5, VT, window + 999).unwrap().is_empty());
    assert!(!s.has_due("r", window + 999).unwrap(), "out of its rate");
    assert_eq!(
        s.next_deadline("r").unwrap(),
        Some(window + 1000),
        "the next window"
    );
    let op = AckAndClaim {
        done: &[],
        queue: "r",
        worker: "w3",
        n: 5,
        visibility_timeout: VT,
    };
    let (_, next) = s.ack_and_claim(&op, window + 1000).unwrap();
    assert_eq!(
        ids(&next),
        r[3..6],
        "a new window, ack_and_claim counted too"
    );
    assert!(s.claim("r", "w3", 1, VT, window + 1500).unwrap().is_empty());
    s.set_rate_limit("r", None, window + 1500).unwrap();
    assert_eq!(s.claim("r", "w3", 5, VT, window + 1500).unwrap().len(), 2);
    let refused = |limit, per| {
        s.set_rate_limit("r", Some(QueueRateLimit { limit, per }), T)
            .is_err()
    };
    assert!(
        refused(0, Duration::from_secs(1)),
        "a limit of 0: pause instead"
    );
    assert!(refused(1, Duration::ZERO), "an empty window");

    assert!(
        s.set_max_in_flight("q", Some(0), T).is_err(),
        "0: pause instead"
    );
    assert!(s.set_paused("", true, T).is_err(), "empty queue name");
    assert!(s.set_max_in_flight("", Some(1), T).is_err());
    assert!(s.queue_controls("").is_err());
}

fn streams(s: &dyn Store) {
    let a = s.publish("orders", None, r#"{"id":1}"#, T).unwrap();
    s.publish("audit", None, "1", T).unwrap();
    let b = s
        .publish("orders", Some("user:7"), r#"{"id":2}"#, T + 1)
        .unwrap();
    assert!(b > a);
    let evs = s.read_since("orders", 0, 10).unwrap();
    assert_eq!(evs.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(evs[1].key.as_deref(), Some("user:7"));
    assert_eq!(s.read_since("orders", a, 10).unwrap()[0].offset, b);
    assert_eq!(s.last_offset("orders").unwrap(), b);
    assert_eq!(s.last_offset("none").unwrap(), 0);
    assert_eq!(s.get_offset("orders", "c").unwrap(), 0);
    assert!(s.save_offset("orders", "c", b, T).unwrap());
    assert!(!s.save_offset("orders", "c", a, T).unwrap(), "only forward");
    assert_eq!(s.get_offset("orders", "c").unwrap(), b);
    let keep = Retention {
        max_age: None,
        max_count: Some(1),
    };
    s.set_retention("orders", keep).unwrap();
    assert_eq!(s.retention("orders").unwrap(), keep);
    assert_eq!(s.prune_stream("orders", T + 2).unwrap(), 1);
    assert_eq!(s.read_since("orders", 0, 10).unwrap().len(), 1);
}

fn notifications(s: &dyn Store) {
    assert_eq!(s.latest_notification().unwrap(), 0);
    let a = s.notify("orders", r#"{"id":1}"#, T).unwrap();
    let b = s.notify("orders", r#"{"id":2}"#, T + 200).unwrap();
    s.notify("other", "3", T + 300).unwrap();
    assert!(s.latest_notification().unwrap() >= b);
    let got = s.notifications_after(a, Some("orders"), 10).unwrap();
    assert_eq!(got.iter().map(|n| n.id).collect::<Vec<_>>(), vec![b]);
    assert_eq!(s.notifications_after(0, None, 10).unwrap().len(), 3);
    assert_eq!(s.prune_notifications(T + 250).unwrap(), 2);
    assert_eq!(s.notifications_after(0, None, 10).unwrap().len(), 1);
}

fn locks(s: &dyn Store) {
    let t1 = s.try_lock("m", "a", 1_000, T).unwrap().unwrap();
    assert_eq!(s.try_lock("m", "b", 1_000, T + 1).unwrap(), None);
    assert_eq!(s.try_lock("m", "a", 1_000, T + 1).unwrap(), None);
    assert!(s.renew_lock("m", t1, 1_000, T + 900).unwrap());
    assert_eq!(s.lock_holder("m", T + 1_500).unwrap().unwrap().owner, "a");
    let t2 = s.try_lock("m", "b", 1_000, T + 1_900).unwrap().unwrap();
    assert!(t2 > t1);
    assert!(!s.renew_lock("m", t1, 1_000, T + 1_901).unwrap());
    assert!(!s.release_lock("m", t1).unwrap());
    assert!(s.release_lock("m", t2).unwrap());
    assert_eq!(s.lock_holder("m", T + 1_902).unwrap(), None);
    let t3 = s.try_lock("other", "a", 1_000, T + 1_903).unwrap().unwrap();
    assert!(t3 > t2, "tokens increase across lock names");
}

fn rate_limits(s: &dyn Store) {
    let w = 1_000;
    let start = (T / w) * w;
    let allowed = (0..5)
        .filter(|_| s.try_rate_limit("k", 3, w, start + 100).unwrap())
        .count();
    assert_eq!(allowed, 3);
    assert!(s.try_rate_limit("other", 3, w, start + 100).unwrap());
    assert!(!s.try_rate_limit("k", 3, w, start + 999).unwrap());
    assert!(
        s.try_rate_limit("k", 3, w, start + 1_000).unwrap(),
        "new window"
    );
}

fn results(s: &dyn Store) {
    s.save_result(7, r#"{"ok":true}"#, 1_000, T).unwrap();
    assert_eq!(
        s.get_result(7, T + 999).unwrap().as_deref(),
        Some(r#"{"ok":true}"#)
    );
    assert_eq!(s.get_result(7, T + 1_000).unwrap(), None);
    assert_eq!(s.get_result(8, T).unwrap(), None);
    s.save_result(9, "1", 10, T + 2_000).unwrap();
    assert!(s.sweep_results(T + 5_000).unwrap() >= 1);
    assert_eq!(s.get_result(9, T + 2_001).unwrap(), None);
}

fn spec<'a>(name: &'a str, cron: &'a str) -> ScheduleSpec<'a> {
    ScheduleSpec {
        name,
        queue: "fires",
        cron,
        tz: None,
        payload: "{}",
        priority: 0,
        expires: None,
    }
}

fn schedules(s: &dyn Store) {
    let hour = 3_600_000;
    let base = (T / hour) * hour;
    s.schedule_add(&spec("hourly", "0 * * * *"), base + 10)
        .unwrap();
    assert_eq!(s.schedule_soonest().unwrap(), Some(base + hour));
    assert!(s.schedule_tick(base + hour - 1).unwrap().0.is_empty());
    let (fired, failed) = s.schedule_tick(base + hour).unwrap();
    assert_eq!((fired.len(), failed.len()), (1, 0));
    assert_eq!(fired[0].fire_at_ms, base + hour);
    assert!(s.get_job(fired[0].job_id).unwrap().is_some());
    assert!(s.schedule_tick(base + hour).unwrap().0.is_empty(), "once");
    let (fired, _) = s.schedule_tick(base + 6 * hour + 5).unwrap();
    assert_eq!(fired.len(), 1, "one catch-up fire after downtime");
    assert_eq!(s.schedule_soonest().unwrap(), Some(base + 7 * hour));
    s.schedule_pause("hourly").unwrap();
    assert_eq!(s.schedule_soonest().unwrap(), None);
    assert!(s.schedule_tick(base + 9 * hour).unwrap().0.is_empty());
    s.schedule_resume("hourly", base + 9 * hour).unwrap();
    assert_eq!(s.schedule_soonest().unwrap(), Some(base + 10 * hour));
    let info = s.schedule_list().unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].last_error, None);
    // Fenced: only while the token holds the lock.
    let t = s
        .try_lock("leader", "me", 60_000, base + 10 * hour)
        .unwrap()
        .unwrap();
    assert!(s
        .schedule_tick_fenced("leader", t + 1, base + 10 * hour)
        .unwrap()
        .is_none());
    let (fired, _) = s
        .schedule_tick_fenced("leader", t, base + 10 * hour)
        .unwrap()
        .unwrap();
    assert_eq!(fired.len(), 1);
    assert!(s.schedule_remove("hourly").unwrap());
    assert!(!s.schedule_remove("hourly").unwrap());
    assert_eq!(s.schedule_pause("hourly").unwrap_err().code(), "not_found");
}

fn application_sql(s: &dyn Store) {
    s.execute("CREATE TABLE conformance_t (a INTEGER, b TEXT)", vec![])
        .unwrap();
    let n = s
        .execute("INSERT INTO conformance_t (a, b) VALUES (1, 'x')", vec![])
        .unwrap();
    assert_eq!(n, 1);
    let rows = s.query("SELECT a, b FROM conformance_t", vec![]).unwrap();
    assert_eq!(rows.columns, ["a", "b"]);
    assert_eq!(
        rows.rows,
        [vec![SqlValue::Integer(1), SqlValue::Text("x".into())]]
    );
}

fn bad_arguments(s: &dyn Store) {
    let code = |r: crate::Result<i64>| r.unwrap_err().code();
    assert_eq!(
        code(s.enqueue("", "1", &EnqueueOpts::default(), 3, T)),
        "invalid_argument"
    );
    assert_eq!(
        code(s.enqueue("q", "{nope", &EnqueueOpts::default(), 3, T)),
        "invalid_json"
    );
    let far = EnqueueOpts {
        run_at: at(crate::validate::MAX_INSTANT_MS + 1),
        ..Default::default()
    };
    assert_eq!(code(s.enqueue("q", "1", &far, 3, T)), "invalid_argument");
    assert_eq!(
        s.claim("q", "w", 0, VT, T).unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        s.schedule_add(&spec("x", "nope"), T).unwrap_err().code(),
        "invalid_cron"
    );
    assert_eq!(
        s.try_lock("m", "o", 0, T).unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(s.queue_stats("q").unwrap(), QueueStats::default());
}
