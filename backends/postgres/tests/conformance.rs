//! The storage seam's conformance suite, on PostgreSQL: every check the
//! SQLite store passes, each on a fresh schema, with explicit times (the
//! server's clock is not used).

mod common;

use common::{url, Schema};
use honker_core::store::conformance::CHECKS;
use honker_postgres::PgStore;

#[test]
#[ignore = "needs PostgreSQL: make pg-test"]
fn every_conformance_check_passes() {
    let mut failed = Vec::new();
    for (name, check) in CHECKS {
        let schema = Schema::new("conf");
        let mut client = postgres::Client::connect(&url(), postgres::NoTls).unwrap();
        honker_postgres::migrate(&mut client, &schema.name).unwrap();
        // The application's own tables go in the test's schema too.
        client
            .batch_execute(&format!("SET search_path TO {}", schema.name))
            .unwrap();
        let store = PgStore::new(client, &schema.name, false);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&store)));
        if let Err(p) = outcome {
            failed.push(format!(
                "{name}: {}",
                honker_core::panic_message(p.as_ref())
            ));
        }
    }
    assert!(failed.is_empty(), "failed checks:\n{}", failed.join("\n"));
}
