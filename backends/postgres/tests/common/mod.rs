//! What the PostgreSQL tests share: the server's URL and a schema of
//! their own for each test.
#![allow(dead_code)]

use honker_postgres::{Pool, PoolOptions};
use std::sync::atomic::{AtomicUsize, Ordering};

pub fn url() -> String {
    std::env::var("HONKER_PG_URL").expect("HONKER_PG_URL: run through `make pg-test`")
}

/// A schema no other test uses, dropped at the end.
pub struct Schema {
    pub name: String,
    pub pool: Pool,
}

impl Schema {
    pub fn new(tag: &str) -> Schema {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Schema {
            name,
            pool: Pool::new(&url(), PoolOptions::default()).unwrap(),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = self.pool.get() {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}
