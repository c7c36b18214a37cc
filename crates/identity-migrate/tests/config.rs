//! Where the database comes from: `--database-url`, `DATABASE_URL` (environment or `.env`),
//! `identity-migrate.toml` (named environments, `default_environment`), strongest first.

mod common;

use common::{command, command_with_dotenv, head, output, revision_count, run, tempdir};
use migrate_testkit::TestDb;

const UNREACHABLE: &str = "postgresql://postgres@127.0.0.1:1/unreachable";

#[test]
fn database_url_from_a_dotenv_file() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join(".env"),
        format!("# the service's settings\nDATABASE_URL={}\n", db.url()),
    )
    .expect("write .env");
    let n = revision_count();
    let out = output(command_with_dotenv(dir.path()).arg("status")).ok();
    assert!(out.stdout.contains(db.name()), "{out}");
    assert!(out.stdout.contains(&format!("pending   {n}\n")), "{out}");
    let out = output(command_with_dotenv(dir.path()).arg("migrate")).ok();
    assert!(
        out.stdout.contains(&format!("Applied {n} revision(s)")),
        "{out}"
    );

    // --no-dotenv ignores it: the embedded default is used instead.
    let out = run(dir.path(), &["status"]).ok();
    assert!(out.stdout.contains("sqlite:identity_service.db"), "{out}");
}

#[test]
fn environment_variable_beats_the_dotenv_file() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL={UNREACHABLE}\n"),
    )
    .expect("write .env");
    let out = output(
        command_with_dotenv(dir.path())
            .env("DATABASE_URL", db.url())
            .arg("status"),
    )
    .ok();
    assert!(out.stdout.contains(db.name()), "{out}");
}

#[test]
fn sqlalchemy_url_in_a_dotenv_file() {
    // The service's own .env holds the SQLAlchemy form.
    let dir = tempdir();
    let db = TestDb::new();
    let url = db
        .url()
        .replacen("postgresql://", "postgresql+asyncpg://", 1);
    std::fs::write(dir.path().join(".env"), format!("DATABASE_URL=\"{url}\"\n")).expect("write");
    let out = output(command_with_dotenv(dir.path()).arg("status")).ok();
    assert!(out.stdout.contains(db.name()), "{out}");
}

#[test]
fn config_file_default_environment() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        format!(
            "default_environment = \"dev\"\n\n\
             [environments.dev]\ndatabase_url = \"{}\"\n\n\
             [environments.prod]\ndatabase_url = \"{UNREACHABLE}\"\n",
            db.url()
        ),
    )
    .expect("write config");
    let out = run(dir.path(), &["migrate"]).ok();
    let n = revision_count();
    assert!(
        out.stdout.contains(&format!("Applied {n} revision(s)")),
        "{out}"
    );
    let out = run(dir.path(), &["status"]).ok();
    assert!(out.stdout.contains(&format!("{} (head)", head())), "{out}");
    // --env picks another one.
    let out = run(dir.path(), &["--env", "prod", "status"]);
    let line = common::assert_one_error(&out, 1);
    assert!(line.contains("127.0.0.1:1"), "{out}");
}

#[test]
fn named_environment_reads_its_url_from_a_variable() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        "[environments.staging]\ndatabase_url_env = \"STAGING_DB\"\n",
    )
    .expect("write config");
    let out = output(
        command(dir.path())
            .env("STAGING_DB", db.url())
            .args(["--env", "staging", "status"]),
    )
    .ok();
    assert!(out.stdout.contains(db.name()), "{out}");
}

#[test]
fn explicit_config_file() {
    let dir = tempdir();
    let elsewhere = tempdir();
    let db = TestDb::new();
    let file = elsewhere.path().join("migrations.toml");
    std::fs::write(
        &file,
        format!(
            "default_environment = \"x\"\n[environments.x]\ndatabase_url = \"{}\"\n",
            db.url()
        ),
    )
    .expect("write config");
    let out = run(
        dir.path(),
        &["--config", file.to_str().expect("utf-8"), "status"],
    )
    .ok();
    assert!(out.stdout.contains(db.name()), "{out}");
}

#[test]
fn database_url_flag_beats_everything() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        format!(
            "default_environment = \"dev\"\n[environments.dev]\ndatabase_url = \"{UNREACHABLE}\"\n"
        ),
    )
    .expect("write config");
    std::fs::write(
        dir.path().join(".env"),
        format!("DATABASE_URL={UNREACHABLE}\n"),
    )
    .expect("write .env");
    let out = output(
        command_with_dotenv(dir.path())
            .env("DATABASE_URL", UNREACHABLE)
            .args(["--database-url", &db.url(), "status"]),
    )
    .ok();
    assert!(out.stdout.contains(db.name()), "{out}");
    assert!(
        out.stdout
            .contains(&format!("pending   {}\n", revision_count())),
        "{out}"
    );
    // Without the flag, DATABASE_URL is used (and is unreachable).
    let out = output(
        command(dir.path())
            .env("DATABASE_URL", UNREACHABLE)
            .arg("status"),
    );
    common::assert_one_error(&out, 1);
}

#[test]
fn database_url_beats_the_default_environment() {
    let dir = tempdir();
    let db = TestDb::new();
    std::fs::write(
        dir.path().join("identity-migrate.toml"),
        format!(
            "default_environment = \"dev\"\n[environments.dev]\ndatabase_url = \"{UNREACHABLE}\"\n"
        ),
    )
    .expect("write config");
    let out = output(
        command(dir.path())
            .env("DATABASE_URL", db.url())
            .arg("status"),
    )
    .ok();
    assert!(out.stdout.contains(db.name()), "{out}");
}
