//! The identity service's contract (`shared/spec/service-models.md`, section 5), proven through
//! real SQLAlchemy 2.0 with asyncpg and with aiosqlite against databases this tool migrated to
//! head: `tests/service/contract.py` runs the checks over the ten tables as
//! `tests/service/models.py` declares them from the spec.
//!
//! The Python packages are pinned in `tests/service/requirements.txt` and installed on first use
//! into a virtualenv under Cargo's target directory (`target/tmp`), keyed by the requirements'
//! content and created under a file lock, so that test binaries running in parallel build it
//! once; later runs reuse it. It needs `python3` (3.9 or later, with `venv`) and PyPI on first
//! use; without them the tests fail with one line saying so, never skip.
#![allow(clippy::unwrap_used)]

use identity_schema::graph;
use migrate_core::driver::Driver;
use migrate_engine::{Engine, Intent, Options, RunIdentity};
use migrate_testkit::TestDb;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const REQUIREMENTS: &str = include_str!("service/requirements.txt");

fn service_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/service")
}

/// The Python interpreter: `IDENTITY_SERVICE_PYTHON` if set, else `python3` on `PATH`.
fn base_python() -> String {
    std::env::var("IDENTITY_SERVICE_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The virtualenv's interpreter, the virtualenv created first if need be.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        REQUIREMENTS.hash(&mut hasher);
        base_python().hash(&mut hasher);
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("identity-service-venv-{:016x}", hasher.finish()));
        let lock_path = venv.with_extension("lock");
        std::fs::create_dir_all(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        let ready = venv.join(".ready");
        if !ready.exists() {
            create_venv(&venv);
            std::fs::write(&ready, REQUIREMENTS).unwrap();
        }
        venv.join("bin/python")
    })
}

/// Creates the virtualenv and installs the pinned packages, or panics with one line.
fn create_venv(venv: &Path) {
    let _ = std::fs::remove_dir_all(venv);
    let fail = |what: &str, out: Result<Output, std::io::Error>| -> ! {
        let why = match out {
            Ok(out) => String::from_utf8_lossy(&out.stderr)
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
                .to_owned(),
            Err(e) => e.to_string(),
        };
        panic!(
            "the service contract suite needs its Python packages, and {what} failed ({why}): it \
             needs python3 (3.9 or later, with venv; or IDENTITY_SERVICE_PYTHON) and PyPI on \
             first use (crates/identity-schema/tests/service/requirements.txt)"
        )
    };
    let run = |c: &mut Command| c.output().map(|o| (o.status.success(), o));
    match run(Command::new(base_python()).args(["-m", "venv"]).arg(venv)) {
        Ok((true, _)) => {}
        Ok((false, out)) => fail("creating the virtualenv", Ok(out)),
        Err(e) => fail(&format!("starting {}", base_python()), Err(e)),
    }
    let install = run(Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-r",
        ])
        .arg(service_dir().join("requirements.txt")));
    match install {
        Ok((true, _)) => {}
        Ok((false, out)) => fail("pip install", Ok(out)),
        Err(e) => fail("pip install", Err(e)),
    }
}

/// Runs the contract against `url`, passed in the environment (never as an argument).
fn contract(url: &str) -> Output {
    Command::new(python())
        .arg("contract.py")
        .current_dir(service_dir())
        .env("IDENTITY_CONTRACT_URL", url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run the contract suite: {e}"))
}

fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Migrates to head through the engine, as `identity-migrate migrate` does.
fn migrate(driver: Box<dyn Driver>) {
    let graph = graph();
    let options = Options::new(RunIdentity {
        os_user: "t".into(),
        host: "t".into(),
        tool_version: "0".into(),
    });
    Engine::new(driver, &graph, options)
        .run(&Intent::Upgrade("head".into()), &mut |_| {})
        .expect("migrate to head");
}

fn postgres_at_head() -> (TestDb, String) {
    let db = TestDb::new();
    let settings = migrate_postgres::url::parse_with_process_env(&db.url()).unwrap();
    migrate(Box::new(
        migrate_postgres::PostgresDriver::connect(&settings, Default::default()).unwrap(),
    ));
    let url = db
        .url()
        .replacen("postgresql://", "postgresql+asyncpg://", 1);
    (db, url)
}

#[test]
fn postgres_at_head_meets_the_contract() {
    let (_db, url) = postgres_at_head();
    let out = contract(&url);
    let text = report(&out);
    assert!(out.status.success(), "the contract fails:\n{text}");
    assert!(text.contains("7 passed, 0 failed"), "{text}");
}

#[test]
fn sqlite_at_head_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.db");
    migrate(Box::new(
        migrate_sqlite::SqliteDriver::connect(
            &migrate_sqlite::SqliteTarget::File(path.clone()),
            Default::default(),
        )
        .unwrap(),
    ));
    let out = contract(&format!("sqlite+aiosqlite:///{}", path.display()));
    let text = report(&out);
    assert!(out.status.success(), "the contract fails:\n{text}");
    assert!(text.contains("7 passed, 0 failed"), "{text}");
    assert!(text.contains("skipped: PostgreSQL only"), "{text}");
}

/// The suite can fail: with one address column back to `inet` (what the withdrawn
/// `789a88e5bf21` did), the ORM's inserts into `users` are refused, NULL address or not.
#[test]
fn the_suite_fails_when_an_address_column_is_inet_again() {
    let (db, url) = postgres_at_head();
    db.client()
        .batch_execute(
            "ALTER TABLE users ALTER COLUMN last_login_ip TYPE inet USING last_login_ip::inet",
        )
        .unwrap();
    let out = contract(&url);
    let text = report(&out);
    assert!(!out.status.success(), "the contract passes:\n{text}");
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        failed.iter().any(|l| l.contains(
            "column \"last_login_ip\" is of type inet but expression is of type character varying"
        )),
        "{text}"
    );
    // Reflection sees it too.
    assert!(
        failed
            .iter()
            .any(|l| l.contains("users.last_login_ip: INET")),
        "{text}"
    );
}
