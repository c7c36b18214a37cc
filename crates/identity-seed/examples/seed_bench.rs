//! Times one seed of a fresh database upgraded to head: `cargo run --release -p identity-seed
//! --example seed_bench [USERS]` (default 1,000,000 users). Not a test: it takes minutes.

use std::time::Instant;

fn main() {
    let users = std::env::args()
        .nth(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let db = migrate_testkit::TestDb::new();
    let settings = migrate_postgres::url::parse_with_process_env(&db.url()).expect("test URL");
    let driver = migrate_postgres::PostgresDriver::connect(&settings, Default::default())
        .expect("connect driver");
    let graph = identity_schema::graph();
    migrate_engine::Engine::new(
        Box::new(driver),
        &graph,
        migrate_engine::Options::new(migrate_engine::RunIdentity {
            os_user: "bench".into(),
            host: "bench".into(),
            tool_version: "0".into(),
        }),
    )
    .run(&migrate_engine::Intent::Upgrade("head".into()), &mut |_| {})
    .expect("upgrade to head");

    let mut client = db.client();
    let started = Instant::now();
    let report = identity_seed::seed_with_progress(
        &mut client,
        &identity_seed::Scale::users(users),
        42,
        &mut |step| match step {
            identity_seed::Progress::Loaded {
                table,
                rows,
                elapsed,
            } => println!(
                "{table:>22} {rows:>10} rows {:>7.1} s",
                elapsed.as_secs_f64()
            ),
            identity_seed::Progress::Rebuilt { objects, elapsed } => println!(
                "{:>22} {objects:>10} objs {:>7.1} s",
                "indexes+keys+analyze",
                elapsed.as_secs_f64()
            ),
        },
    )
    .expect("seed");
    let elapsed = started.elapsed();
    println!(
        "{users} users, {} rows in {:.1} s ({:.0} rows/s)",
        report.total(),
        elapsed.as_secs_f64(),
        report.total() as f64 / elapsed.as_secs_f64()
    );
}
