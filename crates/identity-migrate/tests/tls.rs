//! The binary over TLS: `migrate`, `status`, `verify`, `backup` and `restore` end to end over
//! `verify-full` against a private TLS-only cluster (so `pg_dump`/`pg_restore` must get the same
//! TLS settings), identity-migrate.toml, the bad-input lines, and the machine's own server under
//! the default `prefer`, judged against what psql does there.

mod common;
use common::{assert_one_error, command, output, run, tempdir};
use migrate_testkit::private_cluster::{ServerCert, TlsCluster, CERT_USER};
use std::path::Path;

const FAILURE: i32 = 1;
const BAD_INPUT: i32 = 2;

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn verify_full_url(tls: &TlsCluster, dbname: &str) -> String {
    tls.url(
        "localhost",
        dbname,
        &format!("sslmode=verify-full&sslrootcert={}", p(&tls.ca_file)),
    )
}

#[test]
fn migrate_backup_and_restore_over_verify_full() {
    let tls = TlsCluster::start(ServerCert::Good);
    tls.create_database("app");
    tls.create_database("copy");
    let dir = tempdir();
    let url = verify_full_url(&tls, "app");
    run(dir.path(), &["--database-url", &url, "migrate"]).ok();
    let status = run(dir.path(), &["--database-url", &url, "status"]).ok();
    assert!(
        status
            .stdout
            .contains("certificate chain and host name verified (sslmode=verify-full)"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("up to date"), "{}", status.stdout);
    let json = run(dir.path(), &["--database-url", &url, "status", "--json"]).ok();
    for needle in [
        "\"encrypted\":true",
        "\"host_name_verified\":true",
        "\"sslmode\":\"verify-full\"",
    ] {
        assert!(json.stdout.contains(needle), "{}", json.stdout);
    }
    let verify = run(dir.path(), &["--database-url", &url, "verify"]).ok();
    assert!(
        verify.stdout.contains("ok    tls       encrypted, TLSv1."),
        "{}",
        verify.stdout
    );
    // pg_dump and pg_restore reach a server that refuses every session without TLS: they got
    // the tool's TLS settings through their environment.
    let archive = dir.path().join("app.dump");
    let archive = p(&archive);
    run(
        dir.path(),
        &[
            "--database-url",
            &url,
            "backup",
            "--format",
            "custom",
            "--output",
            &archive,
        ],
    )
    .ok();
    let copy = verify_full_url(&tls, "copy");
    run(dir.path(), &["--database-url", &copy, "restore", &archive]).ok();
    let copied = run(dir.path(), &["--database-url", &copy, "status"]).ok();
    assert!(copied.stdout.contains("up to date"), "{}", copied.stdout);
    assert_eq!(
        tls.cluster
            .psql("copy", "SELECT count(*) FROM alembic_version"),
        "1"
    );
}

#[test]
fn config_file_environment_and_pgssl_variables_reach_the_cli() {
    let tls = TlsCluster::start(ServerCert::Good);
    let dir = tempdir();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        format!(
            "default_environment = \"prod\"\n[environments.prod]\ndatabase_url = \"{}\"\n",
            verify_full_url(&tls, "postgres")
        ),
    )
    .expect("write config");
    let out = run(dir.path(), &["status"]).ok();
    assert!(
        out.stdout.contains("chain and host name verified"),
        "{}",
        out.stdout
    );
    // PGSSLMODE/PGSSLROOTCERT and a client certificate from PGSSLCERT/PGSSLKEY.
    let url = format!(
        "postgresql://{CERT_USER}@localhost:{}/postgres",
        tls.cluster.port
    );
    let out = output(
        command(dir.path())
            .args(["--database-url", &url])
            .arg("status")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &tls.ca_file)
            .env("PGSSLCERT", &tls.client_cert)
            .env("PGSSLKEY", &tls.client_key),
    );
    assert!(
        out.stdout.contains("chain and host name verified"),
        "{out:?}"
    );
}

#[test]
fn bad_tls_input_is_one_line_naming_the_setting() {
    let tls = TlsCluster::start(ServerCert::Good);
    let dir = tempdir();
    let port = tls.cluster.port;
    let open_key = dir.path().join("open.key");
    std::fs::copy(&tls.client_key, &open_key).expect("copy the key");
    migrate_testkit::private_cluster::write_private(
        &open_key,
        &std::fs::read_to_string(&tls.client_key).expect("key"),
        0o644,
    );
    let key_body = std::fs::read_to_string(&tls.client_key).expect("key");
    let key_line = key_body.lines().nth(1).expect("a body line").to_owned();
    let cases: Vec<(String, i32, Vec<&str>)> = vec![
        (
            tls.url("localhost", "postgres", "sslmode=bogus"),
            BAD_INPUT,
            vec!["sslmode", "verify-full"],
        ),
        (
            tls.url("localhost", "postgres", "sslmode=verify-full"),
            BAD_INPUT,
            vec!["sslrootcert"],
        ),
        (
            tls.url(
                "localhost",
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={}", p(&tls.other_ca_file)),
            ),
            FAILURE,
            vec!["not signed by a CA in sslrootcert="],
        ),
        (
            tls.url(
                "127.0.0.1",
                "postgres",
                "sslmode=verify-full&sslrootcert=/etc/nonexistent/ca.pem",
            ),
            BAD_INPUT,
            vec!["sslrootcert", "cannot read"],
        ),
        (
            format!(
                "postgresql://{CERT_USER}@localhost:{port}/postgres?sslmode=require&sslcert={}&sslkey={}",
                p(&tls.client_cert),
                p(&open_key)
            ),
            BAD_INPUT,
            vec!["sslkey", "group or world access", "chmod 600"],
        ),
        (
            tls.url("127.0.0.1", "postgres", "sslmode=disable"),
            FAILURE,
            vec!["no encryption", "sslmode=require"],
        ),
    ];
    for (url, code, needles) in cases {
        let out = run(dir.path(), &["--database-url", &url, "status"]);
        let line = assert_one_error(&out, code);
        for needle in needles {
            assert!(line.contains(needle), "{url}: {line}");
        }
        assert!(!out.all().contains(&key_line), "never the key: {out:?}");
    }
}

/// The machine's own server (or whichever the suite found), under the default `prefer`:
/// encrypted exactly when psql's session there is, and never verified without a CA.
#[test]
fn default_prefer_matches_psql_on_the_suites_server() {
    let db = migrate_testkit::TestDb::new();
    let dir = tempdir();
    let url = db.url();
    let out = run(dir.path(), &["--database-url", &url, "status"]).ok();
    let psql = std::process::Command::new("psql")
        .arg(&url)
        .args([
            "-X",
            "-t",
            "-A",
            "-c",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .env_remove("PGSSLMODE")
        .output()
        .expect("run psql");
    let psql_tls = String::from_utf8_lossy(&psql.stdout).trim() == "t";
    let ours = out.stdout.contains("tls       encrypted, TLSv1.");
    assert_eq!(
        ours, psql_tls,
        "psql encrypted: {psql_tls}; we said {}",
        out.stdout
    );
    if ours {
        assert!(
            out.stdout
                .contains("certificate not verified (sslmode=prefer)"),
            "{}",
            out.stdout
        );
    }
    let full = run(
        dir.path(),
        &[
            "--database-url",
            &format!("{url}?sslmode=verify-full"),
            "status",
        ],
    );
    let line = assert_one_error(&full, BAD_INPUT);
    assert!(line.contains("sslrootcert"), "{line}");
}

/// `verify` warns when a host that is not named as this machine is trusted below verify-full.
#[test]
fn verify_warns_below_verify_full_for_a_remote_name() {
    let tls = TlsCluster::start(ServerCert::Good);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    // The machine's own name reaches 127.0.0.1 here, but it is not a loopback name.
    let resolves = std::net::ToSocketAddrs::to_socket_addrs(&(hostname.as_str(), 1))
        .is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()));
    assert!(
        resolves,
        "{hostname} must resolve to a loopback address on this machine"
    );
    let dir = tempdir();
    let weak = tls.url(&hostname, "postgres", "sslmode=require");
    let out = run(dir.path(), &["--database-url", &weak, "verify"]);
    assert!(
        out.stderr.contains("is not this machine") && out.stderr.contains("sslmode=verify-full"),
        "{out:?}"
    );
    let local = tls.url("127.0.0.1", "postgres", "sslmode=require");
    let out = run(dir.path(), &["--database-url", &local, "verify"]);
    assert!(!out.stderr.contains("is not this machine"), "{out:?}");
}

/// `prefer` falls back to plaintext when the handshake fails, as libpq does, but never
/// silently; `-v` says what protects the session; a password never shows, even at `-vv`.
#[test]
fn prefer_fallback_is_loud_and_verbose_logs_the_session() {
    let tls = TlsCluster::start_allowing_plaintext(ServerCert::Good);
    let dir = tempdir();
    let other = p(&tls.other_ca_file);
    let url = tls.url("localhost", "postgres", &format!("sslrootcert={other}"));
    let out = run(dir.path(), &["--database-url", &url, "status"]).ok();
    assert!(
        out.stderr
            .contains("sslmode=prefer falls back to an unencrypted connection"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("not encrypted (sslmode=prefer)"),
        "{out:?}"
    );
    let secret = "Secr3tZzTls";
    let url = format!(
        "postgresql://postgres:{secret}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        tls.cluster.port,
        p(&tls.ca_file)
    );
    let out = run(dir.path(), &["--database-url", &url, "-vv", "status"]).ok();
    assert!(
        out.stderr
            .contains("connected to postgresql://postgres:***@localhost")
            && out
                .stderr
                .contains("certificate chain and host name verified"),
        "{out:?}"
    );
    assert!(!out.all().contains(secret), "{out:?}");
}
