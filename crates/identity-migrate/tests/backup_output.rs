//! The exact text of `backup`, `backup verify` and `restore` on both databases, and of their
//! error lines: what an operator reads, pinned by snapshots so that a refactoring of the backup
//! code keeps it byte for byte. Paths, database names, sizes and timings are redacted.

mod common;

use common::{run, tempdir, Out};
use migrate_testkit::TestDb;
use std::path::Path;

/// Replaces what differs from run to run: the working directory, the database names, the
/// `size` value, and the revision ids (which move as revisions are added).
fn redact(text: &str, dir: &Path, names: &[&str]) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[DIR]");
    for (i, name) in names.iter().enumerate() {
        text = text.replace(name, &format!("[DB{i}]"));
    }
    text = text.replace(&common::head(), "[HEAD]");
    // A default name holds the time: identity_service_backup_YYYYMMDD_HHMMSS.
    let prefix = "identity_service_backup_";
    while let Some(at) = text.find(&format!("{prefix}2")) {
        let stamp = at + prefix.len();
        text.replace_range(stamp..stamp + 15, "[STAMP]");
    }
    text.lines()
        .map(|line| match line.split_once("  ") {
            Some((key, _)) if key.trim() == "size" => format!("{key}  [SIZE]"),
            _ => line.to_owned(),
        })
        .map(|line| line.trim_end().to_owned() + "\n")
        .collect()
}

/// stdout, then the exit code and stderr when the command failed.
fn shown(out: &Out, dir: &Path, names: &[&str]) -> String {
    let mut text = redact(&out.stdout, dir, names);
    if out.code != 0 {
        text.push_str(&format!(
            "exit {}\n{}",
            out.code,
            redact(&out.stderr, dir, names)
        ));
    }
    text
}

fn at(dir: &Path, url: &str, args: &[&str]) -> Out {
    let mut all = vec!["--database-url", url];
    all.extend_from_slice(args);
    run(dir, &all)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn sqlite_backup_verify_and_restore_read_the_same() {
    let dir = tempdir();
    let d = dir.path();
    let source = format!("sqlite:///{}", d.join("source.db").display());
    let target = format!("sqlite:///{}", d.join("target.db").display());
    let empty = format!("sqlite:///{}", d.join("empty.db").display());
    at(d, &source, &["migrate"]).ok();
    at(d, &empty, &["migrate", "--dry-run"]).ok();
    let archive = d.join("source-backup.db");
    let names: [&str; 0] = [];

    let backup = at(d, &source, &["backup", "-o", s(&archive)]);
    insta::assert_snapshot!("sqlite_backup", shown(&backup, d, &names));
    let verify = run(d, &["backup", "verify", s(&archive)]);
    insta::assert_snapshot!("sqlite_verify", shown(&verify, d, &names));
    let verify_full = run(d, &["backup", "verify", "--full", s(&archive)]);
    insta::assert_snapshot!("sqlite_verify_full", shown(&verify_full, d, &names));
    let restore = at(d, &target, &["restore", s(&archive)]);
    insta::assert_snapshot!("sqlite_restore", shown(&restore, d, &names));

    // Errors: an existing destination, a non-empty target without --yes, a PostgreSQL format.
    let exists = at(d, &source, &["backup", "-o", s(&archive)]);
    insta::assert_snapshot!("sqlite_backup_exists", shown(&exists, d, &names));
    let not_empty = at(d, &target, &["restore", s(&archive)]);
    insta::assert_snapshot!("sqlite_restore_not_empty", shown(&not_empty, d, &names));
    let format = at(d, &source, &["backup", "--format", "custom"]);
    insta::assert_snapshot!("sqlite_backup_format", shown(&format, d, &names));
    let missing = run(d, &["backup", "verify", s(&d.join("nothing.db"))]);
    insta::assert_snapshot!("sqlite_verify_missing", shown(&missing, d, &names));

    // A tampered archive: refused by verify and by restore.
    let mut bytes = std::fs::read(&archive).expect("read the archive");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&archive, bytes).expect("write the archive");
    let tampered = run(d, &["backup", "verify", s(&archive)]);
    insta::assert_snapshot!("sqlite_verify_tampered", shown(&tampered, d, &names));
    let refused = at(d, &target, &["restore", "--yes", s(&archive)]);
    insta::assert_snapshot!("sqlite_restore_tampered", shown(&refused, d, &names));
}

#[test]
fn postgres_backup_verify_and_restore_read_the_same() {
    let dir = tempdir();
    let d = dir.path();
    let source = TestDb::new();
    let target = TestDb::new();
    at(d, &source.url(), &["migrate"]).ok();
    let names = [source.name(), target.name()];
    let archive = d.join("source.dump");

    let backup = at(
        d,
        &source.url(),
        &["backup", "--format", "custom", "-o", s(&archive)],
    );
    insta::assert_snapshot!("postgres_backup", shown(&backup, d, &names));
    let verify = run(d, &["backup", "verify", s(&archive)]);
    insta::assert_snapshot!("postgres_verify", shown(&verify, d, &names));
    let verify_full = run(d, &["backup", "verify", "--full", s(&archive)]);
    insta::assert_snapshot!("postgres_verify_full", shown(&verify_full, d, &names));
    let restore = at(d, &target.url(), &["restore", s(&archive)]);
    insta::assert_snapshot!("postgres_restore", shown(&restore, d, &names));

    let plain = d.join("source.sql");
    let backup_plain = at(
        d,
        &source.url(),
        &["backup", "--format", "plain", "-o", s(&plain)],
    );
    insta::assert_snapshot!("postgres_backup_plain", shown(&backup_plain, d, &names));
    let verify_plain = run(d, &["backup", "verify", s(&plain)]);
    insta::assert_snapshot!("postgres_verify_plain", shown(&verify_plain, d, &names));

    let exists = at(d, &source.url(), &["backup", "-o", s(&archive)]);
    insta::assert_snapshot!("postgres_backup_exists", shown(&exists, d, &names));
    let not_empty = at(d, &target.url(), &["restore", s(&archive)]);
    insta::assert_snapshot!("postgres_restore_not_empty", shown(&not_empty, d, &names));
    let in_place = at(
        d,
        &target.url(),
        &["restore", "--yes", "--in-place", s(&plain)],
    );
    insta::assert_snapshot!("postgres_restore_in_place", shown(&in_place, d, &names));

    let mut bytes = std::fs::read(&archive).expect("read the archive");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&archive, bytes).expect("write the archive");
    let tampered = run(d, &["backup", "verify", s(&archive)]);
    insta::assert_snapshot!("postgres_verify_tampered", shown(&tampered, d, &names));
    let refused = at(d, &target.url(), &["restore", "--yes", s(&archive)]);
    insta::assert_snapshot!("postgres_restore_tampered", shown(&refused, d, &names));
}
