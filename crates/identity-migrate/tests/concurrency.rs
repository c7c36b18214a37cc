//! One migrator at a time: 16 `identity-migrate migrate` processes started at once on a fresh
//! database all exit 0, and every revision up to the head is applied exactly once.

mod common;

use common::{chain, command, head, history, history_to_head, strings, tempdir, version, Out};
use migrate_testkit::TestDb;

#[test]
fn sixteen_migrators_at_once() {
    let dir = tempdir();
    let db = TestDb::new();
    let url = db.url();
    let children: Vec<_> = (0..16)
        .map(|_| {
            command(dir.path())
                .args(["--database-url", &url, "migrate"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn identity-migrate")
        })
        .collect();
    let outs: Vec<Out> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().expect("wait for identity-migrate");
            Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }
        })
        .collect();
    for out in &outs {
        assert_eq!(out.code, 0, "{out}");
        assert!(!out.all().contains("panicked"), "{out}");
    }
    // The first to take the lock does all the work; the others find nothing to do.
    let applied = outs
        .iter()
        .filter(|o| {
            o.stdout
                .contains(&format!("Applied {} revision(s)", chain().len()))
        })
        .count();
    let idle = outs
        .iter()
        .filter(|o| o.stdout.starts_with("Nothing to do"))
        .count();
    assert_eq!((applied, idle), (1, 15), "{outs:#?}");

    assert_eq!(version(&db), Some(vec![head()]));
    assert_eq!(history(&db), history_to_head());
    let per_revision = strings(
        &db,
        "SELECT revision || ':' || count(*) FROM identity_migrate_history \
         WHERE direction = 'up' AND outcome = 'applied' GROUP BY revision \
         ORDER BY revision COLLATE \"C\"",
    );
    let mut once: Vec<String> = chain().iter().map(|id| format!("{id}:1")).collect();
    once.sort();
    assert_eq!(per_revision, once);
    // No migrator left its lock behind.
    let locks = strings(
        &db,
        "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert_eq!(locks, ["0"]);
}
