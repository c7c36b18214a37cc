//! PgBouncer (Debian's package, started by the test) in front of a private cluster: in
//! transaction mode the migration lock cannot hold, so `migrate` refuses with one line before
//! changing anything; read-only commands work; in session mode `migrate` works.

mod common;
use common::{assert_one_error, run, tempdir};
use migrate_testkit::private_cluster::{PgBouncer, PrivateCluster};

const FAILURE: i32 = 1;

#[test]
fn transaction_pooling_is_refused_and_session_pooling_works() {
    let cluster = PrivateCluster::start("pooled", "", None);
    let dir = tempdir();

    let transaction = PgBouncer::start(&cluster, "transaction");
    let url = transaction.url("postgres");
    let out = run(dir.path(), &["--database-url", &url, "migrate"]);
    let line = assert_one_error(&out, FAILURE);
    for needle in ["transaction mode", "pool_mode=session", "directly"] {
        assert!(line.contains(needle), "{line}");
    }
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'alembic_version'"
        ),
        "0",
        "nothing was changed"
    );
    run(dir.path(), &["--database-url", &url, "status"]).ok();
    drop(transaction);

    let session = PgBouncer::start(&cluster, "session");
    let url = session.url("postgres");
    run(dir.path(), &["--database-url", &url, "migrate"]).ok();
    assert_eq!(
        cluster.psql("postgres", "SELECT count(*) FROM alembic_version"),
        "1"
    );
}
