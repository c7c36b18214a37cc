//! TLS with libpq's meaning, against private TLS-only clusters (`hostnossl ... reject`) whose
//! CA, server and client certificates are made at test time: every sslmode against a good
//! certificate, a wrong CA, a wrong host, a CN-only and an expired certificate; client
//! certificates; the PGSSL* variables and ~/.postgresql defaults; a server without TLS.

use migrate_postgres::url::{self, UrlError};
use migrate_postgres::{connect_client, PostgresDriver, SessionSettings};
use migrate_testkit::private_cluster::{
    PrivateCluster, ServerCert, TlsCluster, CERT_USER, SCRAM_PASSWORD, SCRAM_USER,
};
use std::collections::HashMap;
use std::path::Path;

/// How a connection attempt ended: the TLS protocol (None = not encrypted), or the error line.
type Outcome = Result<Option<String>, String>;

/// Connects with `url` and only the variables in `env` (HOME defaults to an empty directory,
/// so nothing of the machine's ~/.postgresql leaks in).
fn attempt(url: &str, env: &[(&str, &str)]) -> Outcome {
    let empty_home = std::env::temp_dir().join("identity-migrate-tls-empty-home");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("HOME".into(), empty_home.to_string_lossy().into_owned());
    for (k, v) in env {
        vars.insert((*k).into(), (*v).into());
    }
    let settings =
        url::parse(url, &|name| vars.get(name).cloned()).map_err(|e| format!("bad input: {e}"))?;
    let mut client = connect_client(&settings, "tls-test").map_err(|e| e.to_string())?;
    let row = client
        .query_opt(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(row.map(|r| r.get(0)))
}

fn encrypted(outcome: &Outcome, what: &str) {
    match outcome {
        Ok(Some(protocol)) => assert!(protocol.starts_with("TLSv1."), "{what}: {protocol}"),
        other => panic!("{what}: expected an encrypted session, got {other:?}"),
    }
}

fn fails_with(outcome: &Outcome, needles: &[&str], what: &str) {
    match outcome {
        Err(line) => {
            assert!(!line.contains('\n'), "{what}: one line: {line}");
            for needle in needles {
                assert!(line.contains(needle), "{what}: {line:?} lacks {needle:?}");
            }
        }
        Ok(v) => panic!("{what}: expected a failure, connected ({v:?})"),
    }
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn every_sslmode_against_a_good_certificate_and_a_wrong_ca() {
    let tls = TlsCluster::start(ServerCert::Good);
    let ca = p(&tls.ca_file);
    let other = p(&tls.other_ca_file);
    let at = |host: &str, query: &str| attempt(&tls.url(host, "postgres", query), &[]);

    fails_with(
        &at("127.0.0.1", "sslmode=disable"),
        &["no encryption", "sslmode=require"],
        "disable against hostnossl reject",
    );
    encrypted(&at("127.0.0.1", "sslmode=allow"), "allow retries with TLS");
    encrypted(&at("127.0.0.1", ""), "default prefer");
    encrypted(&at("127.0.0.1", "sslmode=require"), "require");
    encrypted(
        &at("127.0.0.1", &format!("sslmode=require&sslrootcert={ca}")),
        "require with the right CA",
    );
    fails_with(
        &at("127.0.0.1", &format!("sslmode=require&sslrootcert={other}")),
        &["not signed by a CA in sslrootcert", "point sslrootcert"],
        "require with a root certificate verifies the chain (libpq's legacy rule)",
    );
    for host in ["localhost", "127.0.0.1"] {
        encrypted(
            &at(host, &format!("sslmode=verify-ca&sslrootcert={ca}")),
            "verify-ca",
        );
        encrypted(
            &at(host, &format!("sslmode=verify-full&sslrootcert={ca}")),
            "verify-full (DNS and IP subjectAltName)",
        );
        for mode in ["verify-ca", "verify-full"] {
            fails_with(
                &at(host, &format!("sslmode={mode}&sslrootcert={other}")),
                &["not signed by a CA in sslrootcert=", "point sslrootcert"],
                "wrong CA",
            );
        }
    }
    // The asyncpg spelling of a SQLAlchemy URL means the same.
    encrypted(
        &attempt(
            &format!(
                "postgresql+asyncpg://postgres@localhost:{}/postgres?ssl=verify-full&sslrootcert={ca}",
                tls.cluster.port
            ),
            &[],
        ),
        "asyncpg ssl=verify-full",
    );
    // A keyword DSN, as psql takes it.
    encrypted(
        &attempt(
            &format!(
                "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}",
                tls.cluster.port
            ),
            &[],
        ),
        "keyword DSN",
    );
}

#[test]
fn client_certificates_environment_and_home_defaults() {
    let tls = TlsCluster::start(ServerCert::Good);
    let ca = p(&tls.ca_file);
    let port = tls.cluster.port;
    let cert_url = |query: &str| {
        format!("postgresql://{CERT_USER}@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}{query}")
    };
    fails_with(
        &attempt(&cert_url(""), &[]),
        &["certificate"],
        "cert auth without a client certificate",
    );
    encrypted(
        &attempt(
            &cert_url(&format!(
                "&sslcert={}&sslkey={}",
                p(&tls.client_cert),
                p(&tls.client_key)
            )),
            &[],
        ),
        "cert auth with sslcert/sslkey",
    );
    // The PGSSL* variables, and the URL winning over them.
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    encrypted(
        &attempt(
            &format!("postgresql://postgres@localhost:{port}/postgres"),
            &env,
        ),
        "PGSSLMODE + PGSSLROOTCERT",
    );
    let other = p(&tls.other_ca_file);
    let wrong = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", other.as_str()),
    ];
    fails_with(
        &attempt(
            &format!("postgresql://postgres@localhost:{port}/postgres"),
            &wrong,
        ),
        &["not signed by a CA"],
        "PGSSLROOTCERT with the wrong CA",
    );
    let client_env = [
        ("PGSSLCERT", p(&tls.client_cert)),
        ("PGSSLKEY", p(&tls.client_key)),
    ];
    let client_env: Vec<(&str, &str)> = client_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    encrypted(&attempt(&cert_url(""), &client_env), "PGSSLCERT + PGSSLKEY");
    // ~/.postgresql/root.crt, postgresql.crt and postgresql.key, as libpq finds them.
    let home = p(&tls.home);
    let with_home = [("HOME", home.as_str())];
    encrypted(
        &attempt(
            &format!("postgresql://{CERT_USER}@localhost:{port}/postgres?sslmode=verify-full"),
            &with_home,
        ),
        "home defaults: root.crt and the client certificate",
    );
    let settings = url::parse(
        &format!("postgresql://postgres@localhost:{port}/postgres?sslmode=require"),
        &|name| (name == "HOME").then(|| home.clone()),
    )
    .expect("parses");
    assert_eq!(
        settings.tls.verification(),
        migrate_postgres::tls::Verification::Chain,
        "require with ~/.postgresql/root.crt present verifies the chain"
    );
}

#[test]
fn bad_key_files_are_bad_input_naming_the_setting() {
    let tls = TlsCluster::start(ServerCert::Good);
    let ca = p(&tls.ca_file);
    let port = tls.cluster.port;
    let open_key = tls.home.join("open.key");
    std::fs::copy(&tls.client_key, &open_key).expect("copy key");
    migrate_testkit::private_cluster::write_private(
        &open_key,
        &std::fs::read_to_string(&tls.client_key).expect("read key"),
        0o644,
    );
    let url_with_key = |key: &str| {
        format!(
            "postgresql://{CERT_USER}@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={key}",
            p(&tls.client_cert)
        )
    };
    let key_text = std::fs::read_to_string(&tls.client_key).expect("key");
    let body_line = key_text.lines().nth(1).expect("a key body line");
    for (key, needles) in [
        (
            p(&open_key),
            &["sslkey", "group or world access", "chmod 600"][..],
        ),
        (
            "/nonexistent/postgresql.key".to_owned(),
            &["sslkey", "cannot read"][..],
        ),
    ] {
        let outcome = attempt(&url_with_key(&key), &[]);
        fails_with(&outcome, needles, &key);
        let line = outcome.expect_err("fails");
        assert!(line.starts_with("bad input:"), "{line}");
        assert!(!line.contains(body_line), "never the key's content: {line}");
    }
    let bogus = url::parse(&tls.url("localhost", "postgres", "sslmode=bogus"), &|_| {
        None
    });
    assert!(matches!(
        bogus,
        Err(UrlError::InvalidParameter {
            name: "sslmode",
            ..
        })
    ));
}

#[test]
fn a_revoked_server_certificate_fails_with_sslcrl() {
    let tls = TlsCluster::start(ServerCert::Good);
    let ca = p(&tls.ca_file);
    let crl = p(&tls.crl_file);
    let at = |query: &str| attempt(&tls.url("localhost", "postgres", query), &[]);
    encrypted(
        &at(&format!("sslmode=verify-full&sslrootcert={ca}")),
        "without the CRL",
    );
    fails_with(
        &at(&format!(
            "sslmode=verify-full&sslrootcert={ca}&sslcrl={crl}"
        )),
        &["revoked by sslcrl"],
        "sslcrl",
    );
    fails_with(
        &attempt(
            &tls.url(
                "localhost",
                "postgres",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            &[("PGSSLCRL", crl.as_str())],
        ),
        &["revoked"],
        "PGSSLCRL",
    );
}

#[test]
fn channel_binding_require_binds_scram_to_the_tls_session() {
    let tls = TlsCluster::start(ServerCert::Good);
    let url = |query: &str| {
        format!(
            "postgresql://{SCRAM_USER}:{SCRAM_PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}{query}",
            tls.cluster.port,
            p(&tls.ca_file)
        )
    };
    encrypted(
        &attempt(&url("&channel_binding=require"), &[]),
        "SCRAM-SHA-256-PLUS",
    );
    // Trust authentication has nothing to bind: require refuses it, as libpq does.
    fails_with(
        &attempt(
            &tls.url(
                "localhost",
                "postgres",
                &format!(
                    "sslmode=verify-full&sslrootcert={}&channel_binding=require",
                    p(&tls.ca_file)
                ),
            ),
            &[],
        ),
        &[],
        "channel binding against trust",
    );
    let outcome = attempt(&url("&channel_binding=require"), &[]);
    assert!(!format!("{outcome:?}").contains(SCRAM_PASSWORD));
}

#[test]
fn wrong_host_fails_only_under_verify_full() {
    let tls = TlsCluster::start(ServerCert::WrongHost);
    let ca = p(&tls.ca_file);
    let at = |query: &str| attempt(&tls.url("localhost", "postgres", query), &[]);
    encrypted(&at("sslmode=require"), "require ignores the name");
    encrypted(
        &at(&format!("sslmode=verify-ca&sslrootcert={ca}")),
        "verify-ca ignores the name",
    );
    fails_with(
        &at(&format!("sslmode=verify-full&sslrootcert={ca}")),
        &[
            "not valid for host \"localhost\"",
            "db.example",
            "sslmode=verify-ca",
        ],
        "verify-full checks the name",
    );
}

#[test]
fn common_name_only_certificate_says_rustls_ignores_the_cn() {
    let tls = TlsCluster::start(ServerCert::CommonNameOnly);
    let ca = p(&tls.ca_file);
    let at = |query: &str| attempt(&tls.url("localhost", "postgres", query), &[]);
    encrypted(
        &at(&format!("sslmode=verify-ca&sslrootcert={ca}")),
        "verify-ca",
    );
    fails_with(
        &at(&format!("sslmode=verify-full&sslrootcert={ca}")),
        &[
            "no subjectAltName",
            "rustls ignores the CN",
            "subjectAltName=DNS:localhost",
        ],
        "CN-only under verify-full",
    );
}

#[test]
fn expired_certificate_fails_when_the_chain_is_checked() {
    let tls = TlsCluster::start(ServerCert::Expired);
    let ca = p(&tls.ca_file);
    let at = |query: &str| attempt(&tls.url("localhost", "postgres", query), &[]);
    encrypted(&at("sslmode=require"), "require checks nothing");
    for mode in ["verify-ca", "verify-full"] {
        fails_with(
            &at(&format!("sslmode={mode}&sslrootcert={ca}")),
            &["expired", "renew"],
            mode,
        );
    }
}

#[test]
fn server_without_tls_under_require_and_prefer() {
    let plain = PrivateCluster::start("plain", "ssl = off", None);
    let url = |mode: &str| {
        format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode={mode}",
            plain.port
        )
    };
    fails_with(
        &attempt(&url("require"), &[]),
        &["does not offer TLS", "sslmode=require"],
        "require against ssl=off",
    );
    assert_eq!(
        attempt(&url("prefer"), &[]),
        Ok(None),
        "prefer falls back to plaintext"
    );
    // The driver reports what protects the session.
    let settings = url::parse(&url("prefer"), &|_| None).expect("parses");
    let mut driver =
        PostgresDriver::connect(&settings, SessionSettings::default()).expect("connects");
    let security = driver.security().expect("security");
    assert!(!security.encrypted());
    assert_eq!(security.to_string(), "not encrypted (sslmode=prefer)");
}
