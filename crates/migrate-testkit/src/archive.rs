//! Backup archives in tests: their files (listed, copied, cut, overwritten, re-hashed into the
//! manifest to hide the damage), the content fingerprint a round trip must keep, and the
//! databases a restore leaves beside its target. One copy for every crate that tests backups.

use crate::TestDb;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest beside an archive: `<archive>.manifest.json`.
pub use migrate_backup::manifest_path as manifest_of;

/// Names in a directory (hidden ones included), sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A file's size in bytes.
pub fn size(file: &Path) -> u64 {
    std::fs::metadata(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .len()
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256(file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("create a directory");
        for f in listing(from) {
            copy_tree(&from.join(&f), &to.join(&f));
        }
    } else {
        std::fs::copy(from, to).expect("copy a file");
    }
}

/// Copies an archive (a file or a directory) and its manifest into `into` (created), keeping
/// the archive's name.
pub fn copy_backup(archive: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).expect("create a case directory");
    let copy = into.join(archive.file_name().expect("a file name"));
    copy_tree(archive, &copy);
    std::fs::copy(manifest_of(archive), manifest_of(&copy)).expect("copy the manifest");
    copy
}

/// Cuts a file to `len` bytes.
pub fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open for truncation")
        .set_len(len)
        .expect("truncate");
}

/// Overwrites `n` bytes at `offset` with 'Z' (fewer at the end of the file; at least one).
pub fn overwrite(file: &Path, offset: u64, n: usize) {
    let mut bytes = std::fs::read(file).expect("read");
    let start = usize::try_from(offset).expect("offset");
    let end = (start + n).min(bytes.len());
    assert!(start < end, "nothing to overwrite in {}", file.display());
    for b in &mut bytes[start..end] {
        *b = b'Z';
    }
    std::fs::write(file, bytes).expect("write");
}

/// Overwrites up to `n` bytes at `offset` with 'Z', keeping every newline (so every line
/// count stays).
pub fn overwrite_keeping_lines(file: &Path, offset: u64, n: usize) {
    let mut bytes = std::fs::read(file).expect("read");
    let start = usize::try_from(offset).expect("offset");
    for b in bytes.iter_mut().skip(start).take(n) {
        if *b != b'\n' {
            *b = b'Z';
        }
    }
    std::fs::write(file, bytes).expect("write");
}

/// The biggest data file of a directory archive.
pub fn biggest_data_file(archive: &Path) -> PathBuf {
    listing(archive)
        .into_iter()
        .filter(|f| f != "toc.dat" && (f.ends_with(".dat.gz") || f.ends_with(".dat")))
        .map(|f| archive.join(f))
        .max_by_key(|p| size(p))
        .expect("a data file")
}

/// Byte offset of the first occurrence of `needle` in a file, at or after `from`.
pub fn find(file: &Path, needle: &str, from: usize) -> usize {
    let bytes = std::fs::read(file).expect("read");
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map(|p| p + from)
        .unwrap_or_else(|| panic!("{needle:?} not in {}", file.display()))
}

/// Makes the manifest's sizes and SHA-256s match the files as they are now (a manifest
/// rewritten to hide damage): only the row counts and a full read can still tell.
pub fn rewrite_hashes(archive: &Path) {
    let path = manifest_of(archive);
    let text = std::fs::read_to_string(&path).expect("read the manifest");
    let mut manifest: serde_json::Value = serde_json::from_str(&text).expect("parse the manifest");
    let files = manifest
        .get_mut("files")
        .and_then(serde_json::Value::as_array_mut)
        .expect("the manifest's files");
    for entry in files {
        let name = entry["path"].as_str().expect("a file's path").to_owned();
        let file = if archive.is_dir() {
            archive.join(name)
        } else {
            archive.to_owned()
        };
        entry["bytes"] = size(&file).into();
        entry["sha256"] = sha256(&file).into();
    }
    let text = serde_json::to_string_pretty(&manifest).expect("write the manifest");
    std::fs::write(&path, text + "\n").expect("write the manifest");
}

/// What a restore must keep: every table's row count and a checksum of all its rows in a fixed
/// order, and every sequence's position (the tool's own tables included).
pub fn content_of(client: &mut postgres::Client) -> BTreeMap<String, String> {
    let tables: Vec<String> = client
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .expect("list tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let sum: String = client
            .query_one(
                &format!(
                    "SELECT count(*)::text || ' ' || \
                     md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {t} t"
                ),
                &[],
            )
            .expect("checksum a table")
            .get(0);
        out.insert(format!("table {t}"), sum);
    }
    for row in client
        .query(
            "SELECT schemaname || '.' || sequencename, coalesce(last_value::text, 'unset') \
             FROM pg_sequences ORDER BY 1",
            &[],
        )
        .expect("list sequences")
    {
        out.insert(format!("sequence {}", row.get::<_, String>(0)), row.get(1));
    }
    out
}

/// A session on another database of `db`'s server (`postgres`, a scratch database), as the
/// test server's user.
pub fn connect_to(db: &TestDb, name: &str) -> postgres::Client {
    let url = db.url();
    let at = url.rfind('/').expect("a database in the URL");
    postgres::Client::connect(&format!("{}/{name}", &url[..at]), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {name}: {e}"))
}

/// Databases named after `db` with a suffix: scratch or previous databases of a restore.
pub fn databases_beside(db: &TestDb) -> Vec<String> {
    connect_to(db, "postgres")
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
            &[&format!("{}__", db.name())],
        )
        .expect("list databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Drops the named databases when the test ends, however it ends.
pub struct DropDatabases<'a>(pub &'a TestDb, pub Vec<String>);

impl Drop for DropDatabases<'_> {
    fn drop(&mut self) {
        let mut admin = connect_to(self.0, "postgres");
        for name in &self.1 {
            let _ =
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"));
        }
    }
}
