//! libpq's host list and `target_session_attrs` through the binary: the first server down, a
//! standby first, a standby alone; `application_name` as the server sees it.

mod common;
use common::{assert_one_error, run, tempdir};
use migrate_testkit::private_cluster::PrivateCluster;

const FAILURE: i32 = 1;

fn two_hosts(first: u16, second: u16, query: &str) -> String {
    format!("postgresql://postgres@127.0.0.1:{first},127.0.0.1:{second}/postgres?sslmode=disable{query}")
}

#[test]
fn migrate_reaches_the_second_server_when_the_first_is_down() {
    let down = PrivateCluster::start("failover-down", "", None);
    down.stop();
    let up = PrivateCluster::start("failover-up", "", None);
    let dir = tempdir();
    let url = two_hosts(down.port, up.port, "");
    run(dir.path(), &["--database-url", &url, "migrate"]).ok();
    assert_eq!(
        up.psql("postgres", "SELECT count(*) FROM alembic_version"),
        "1"
    );
    let status = run(dir.path(), &["--database-url", &url, "status"]).ok();
    assert!(status.stdout.contains("up to date"), "{}", status.stdout);
}

#[test]
fn a_standby_is_skipped_under_read_write_and_refused_alone() {
    let primary = PrivateCluster::start("failover-primary", "", None);
    let standby = PrivateCluster::standby_of(&primary);
    assert_eq!(standby.psql("postgres", "SELECT pg_is_in_recovery()"), "t");
    let dir = tempdir();

    // Alone under read-write: one line naming the setting.
    let alone = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable&target_session_attrs=read-write",
        standby.port
    );
    let line = assert_one_error(
        &run(dir.path(), &["--database-url", &alone, "migrate"]),
        FAILURE,
    );
    assert!(line.contains("target_session_attrs=read-write"), "{line}");
    // Alone without it: migrate still refuses before writing anything.
    let plain = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        standby.port
    );
    let line = assert_one_error(
        &run(dir.path(), &["--database-url", &plain, "migrate"]),
        FAILURE,
    );
    assert!(line.contains("read-only standby"), "{line}");
    // Reading works on a standby.
    run(dir.path(), &["--database-url", &plain, "status"]).ok();

    // Standby first, primary second: read-write skips to the primary.
    let url = two_hosts(
        standby.port,
        primary.port,
        "&target_session_attrs=read-write",
    );
    run(dir.path(), &["--database-url", &url, "migrate"]).ok();
    assert_eq!(
        primary.psql("postgres", "SELECT count(*) FROM alembic_version"),
        "1"
    );
}

#[test]
fn application_name_is_visible_to_the_server() {
    let cluster = PrivateCluster::start("appname", "", None);
    let url = format!(
        "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        cluster.port
    );
    for (query, expected) in [
        ("", "identity-migrate"),
        ("&application_name=deploy-42", "deploy-42"),
    ] {
        let settings =
            migrate_postgres::url::parse(&format!("{url}{query}"), &|_| None).expect("parses");
        let mut client =
            migrate_postgres::connect_client(&settings, "identity-migrate").expect("connects");
        let name: String = client
            .query_one(
                "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .expect("query")
            .get(0);
        assert_eq!(name, expected);
    }
}
