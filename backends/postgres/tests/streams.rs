//! Streams on PostgreSQL: offsets per stream, given in commit order, so a
//! reader never skips an event that commits late.

mod common;

use common::{url, Schema};
use honker_postgres::{migrate, Pool, PoolOptions};
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs a PostgreSQL server: make pg-test"]
fn concurrent_publishers_never_make_a_reader_skip_an_offset() {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 40;
    let s = Schema::new("pub");
    let n = s.name.clone();
    migrate(&mut s.pool.get().unwrap(), &n).unwrap();
    let seen = std::thread::scope(|scope| {
        // The reader: reads what is after the last offset it saw, again and
        // again (a bounded busy loop: this test is about what it sees, not
        // how it waits); a gap would be an offset a late commit fills after
        // it moved on, which a sequence shared by the transactions allows.
        let reader = scope.spawn(|| {
            let pool = Pool::new(&url(), PoolOptions::default()).unwrap();
            let mut c = pool.get().unwrap();
            let mut last = 0i64;
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < PUBLISHERS * EACH {
                assert!(
                    Instant::now() < deadline,
                    "the reader saw {} events",
                    seen.len()
                );
                let rows = c
                    .query(
                        &format!("SELECT seq FROM {n}.read_since('orders', $1, 1000)"),
                        &[&last],
                    )
                    .unwrap();
                for r in rows {
                    let seq: i64 = r.get(0);
                    assert_eq!(seq, last + 1, "offset {} was skipped", last + 1);
                    last = seq;
                    seen.push(seq);
                }
            }
            seen
        });
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let n = n.clone();
                scope.spawn(move || {
                    let pool = Pool::new(&url(), PoolOptions::default()).unwrap();
                    let mut c = pool.get().unwrap();
                    for i in 0..EACH {
                        let mut tx = c.transaction().unwrap();
                        tx.query_one(
                            &format!("SELECT {n}.publish('orders', $1)"),
                            &[&format!("{{\"p\":{p},\"i\":{i}}}")],
                        )
                        .unwrap();
                        // Some commits come late: the offset is taken, the
                        // event not yet visible.
                        if (p + i) % 3 == 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        tx.commit().unwrap();
                    }
                })
            })
            .collect();
        for p in publishers {
            p.join().unwrap();
        }
        reader.join().unwrap()
    });
    assert_eq!(seen, (1..=(PUBLISHERS * EACH) as i64).collect::<Vec<_>>());
    // Offsets are per stream: another stream starts at 1.
    let mut c = s.pool.get().unwrap();
    let first: i64 = c
        .query_one(&format!("SELECT {}.publish('other', '1')", s.name), &[])
        .unwrap()
        .get(0);
    assert_eq!(first, 1);
}
