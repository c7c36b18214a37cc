//! `sqlite:` URLs.
#![allow(clippy::unwrap_used, missing_docs)]

use migrate_sqlite::{parse_url, SqliteTarget};
use std::path::PathBuf;

fn file(path: &str) -> SqliteTarget {
    SqliteTarget::File(PathBuf::from(path))
}

#[test]
fn the_documented_forms_parse() {
    for (url, expected) in [
        ("sqlite::memory:", SqliteTarget::Memory),
        ("sqlite://relative/path.db", file("relative/path.db")),
        ("sqlite:///absolute/path.db", file("/absolute/path.db")),
        ("sqlite:path.db", file("path.db")),
        ("sqlite:/absolute/path.db", file("/absolute/path.db")),
        ("sqlite://:memory:", SqliteTarget::Memory),
        ("sqlite:///:memory:", SqliteTarget::Memory),
        ("SQLite:///absolute/path.db", file("/absolute/path.db")),
        ("sqlite:///tmp/my%20db.db", file("/tmp/my db.db")),
        ("sqlite://./identity.db", file("./identity.db")),
    ] {
        assert_eq!(parse_url(url), Ok(expected), "{url}");
    }
}

#[test]
fn sqlalchemy_urls_mean_what_they_mean_to_the_service() {
    for (url, expected) in [
        ("sqlite+aiosqlite:///./identity.db", file("./identity.db")),
        ("sqlite+aiosqlite:///identity.db", file("identity.db")),
        (
            "sqlite+pysqlite:////var/lib/identity.db",
            file("/var/lib/identity.db"),
        ),
        ("sqlite+aiosqlite://", SqliteTarget::Memory),
        ("sqlite+aiosqlite:///:memory:", SqliteTarget::Memory),
    ] {
        assert_eq!(parse_url(url), Ok(expected), "{url}");
    }
}

#[test]
fn errors_say_what_is_wrong_without_echoing_the_url() {
    for url in [
        "sqlite:",
        "sqlite://",
        "sqlite:///",
        "sqlite:///secret%zz.db",
        "sqlite:///secret.db?mode=ro",
        "sqlite:///secret.db#frag",
        "sqlite+aiosqlite://secret-host/db",
        "sqlite+:///secret.db",
        "postgresql://user:secret@host/db",
        "secret",
        "user:secret@host",
        "sqlite:///secret%00.db",
    ] {
        let error = parse_url(url).unwrap_err();
        assert!(!error.contains("secret"), "{url}: {error}");
        assert!(error.contains("sqlite::memory:"), "{url}: {error}");
    }
    assert!(parse_url("postgresql://u:p@h/d")
        .unwrap_err()
        .contains("scheme postgresql"));
    assert!(parse_url("sqlite:///a.db?mode=ro")
        .unwrap_err()
        .starts_with("sqlite: URL has a query string"));
}

#[test]
fn targets_display_as_urls() {
    assert_eq!(file("/a/b.db").to_string(), "sqlite:/a/b.db");
    assert_eq!(SqliteTarget::Memory.to_string(), "sqlite::memory:");
    assert_eq!(
        parse_url(&file("/a/b.db").to_string()).unwrap(),
        file("/a/b.db")
    );
}
