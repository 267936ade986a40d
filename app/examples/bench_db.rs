//! A throwaway PostgreSQL with the app's schema, for benchmarks: prints
//! `postgres://...` on one line, then runs until its standard input closes.

use std::io::Read;

fn main() {
    let cluster = testkit::PgCluster::start();
    let name = cluster.create_database();
    cluster.psql(&name, &testkit::schema_sql());
    println!("{}", cluster.url(&name));
    // Runs until the caller closes our stdin; dropping the cluster stops and deletes it.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
