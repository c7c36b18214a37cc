//! Backup and restore through SQLite's online backup API, and per-table row counts and data
//! digests for the backup manifest.
//!
//! # Backup
//!
//! [`SqliteDriver::backup_to`] copies every page of the database in one backup step, which reads
//! one consistent snapshot: in WAL mode that read blocks no writer, and writers that commit
//! meanwhile are simply not in the copy (an incremental backup would restart at each of their
//! commits and might never finish on a busy database). The copy goes to a new private file beside
//! the destination (created 0600 whatever the umask), is switched to the rollback journal so the
//! backup is one self-contained file with no `-wal` beside it, checked with `PRAGMA quick_check`,
//! synced, and only then linked to its final name, which fails rather than overwrite anything:
//! a failure or a killed process never leaves a partial file under the backup's name.
//!
//! # Restore
//!
//! [`SqliteDriver::restore_from`] checks the backup (`quick_check`) and then copies it into the
//! open database with the same API, under the migration lock. The whole copy is one write
//! transaction of the destination (through its WAL), so it is atomic: other connections see the
//! old database or the new one, never a mix, and a crash midway leaves the old one. This is
//! chosen over writing a temporary file and renaming it over the database, which is atomic only
//! for connections opened afterwards: one already open keeps the old inode and its `-wal` and
//! `-shm` files, which then no longer match the new file.
//!
//! # Digests
//!
//! [`SqliteDriver::table_stats`] and [`file_table_stats`] count the rows of every table and hash its data with SHA-256, in one read
//! transaction. Each row is rendered as one line in the style of PostgreSQL's `COPY` text format
//! (values separated by tabs, `\N` for NULL, backslash escapes for backslash, tab, newline and
//! carriage return, `\\x` and hex digits for a blob, integers in decimal, reals in their
//! shortest round-trip decimal form), rows in rowid order (primary key order for a `WITHOUT
//! ROWID` table). The online backup copies pages, rowids included, so a backup and its restore
//! hash the same. Tables are keyed by their SQLite name (`users`, `legacy.users_simple`); the
//! tool's own tables are included, as `pg_dump` includes them.

use crate::{classify, message_of, SqliteDriver};
use migrate_core::backup::{
    check_content, ArchiveFormat, ArchiveReader, BackupDriver, Expected, Method, Progress,
    RestoreError, RestoreOutcome, RestoreRequest, Snapshot, SnapshotRequest, TableData,
};
use migrate_core::driver::{Driver, DriverError};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a database holds of one table (the core's [`TableData`]).
pub type TableStats = TableData;

/// The manifest's `format` of a SQLite backup.
pub const FORMAT: &str = "sqlite";

/// Reads SQLite backups: each is a database file, read whole.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteArchiveReader;

impl ArchiveReader for SqliteArchiveReader {
    fn table_of_contents(
        &self,
        _archive: &Path,
        _format: &str,
    ) -> Result<Option<Vec<String>>, DriverError> {
        // A file of a few megabytes at most is read whole every time.
        Ok(None)
    }

    fn read(
        &self,
        archive: &Path,
        format: &str,
    ) -> Result<BTreeMap<String, TableData>, DriverError> {
        if format != FORMAT {
            return Err(DriverError::Unsupported(format!(
                "{} is not a SQLite backup (format {format})",
                archive.display()
            )));
        }
        file_table_stats(archive)
    }
}

impl BackupDriver for SqliteDriver {
    fn redacted(&self) -> String {
        self.target().to_string()
    }

    fn archive_format(&self, request: &SnapshotRequest) -> Result<ArchiveFormat, String> {
        // Refused rather than ignored: the operator asked for something a SQLite backup is not.
        if let Some(format) = &request.format {
            return Err(format!(
                "--format {format} applies to PostgreSQL: a SQLite backup is always a copy of the database file"
            ));
        }
        if request.compress.is_some() {
            return Err(
                "--compress applies to PostgreSQL: a SQLite backup is a plain copy of the database file"
                    .to_owned(),
            );
        }
        Ok(ArchiveFormat {
            name: FORMAT.to_owned(),
            extension: ".db",
            compression: None,
        })
    }

    fn stamp(&mut self) -> Result<String, DriverError> {
        self.conn
            .query_row("SELECT strftime('%Y%m%d_%H%M%S', 'now')", [], |r| r.get(0))
            .map_err(|e| DriverError::Io(format!("cannot read the clock of SQLite: {e}")))
    }

    fn snapshot(
        &mut self,
        request: &SnapshotRequest,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Snapshot, DriverError> {
        if self.target().path().is_none() {
            return Err(DriverError::Io(
                "an in-memory database cannot be backed up: it lives only in its own connection"
                    .to_owned(),
            ));
        }
        let format = self.archive_format(request).map_err(DriverError::Io)?;
        let started = Instant::now();
        let server_version = self.server_version()?;
        let created_at: String = self
            .conn
            .query_row("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', 'now')", [], |r| {
                r.get(0)
            })
            .map_err(|e| DriverError::Io(format!("cannot read the clock of SQLite: {e}")))?;
        let archived = self.backup_to(staged)?;
        progress(Progress {
            bytes: fs::metadata(staged).map_or(0, |m| m.len()),
            elapsed: started.elapsed(),
        });
        Ok(Snapshot {
            format,
            created_at,
            server_version,
            tool_version: String::new(),
            revisions: file_revisions(staged)?,
            // The copy is one snapshot of the database: what it holds is what was counted.
            counted: archived.iter().map(|(t, d)| (t.clone(), d.rows)).collect(),
            archived,
            files: None,
            checked: "quick_check, SHA-256, and every row read back from the copy".to_owned(),
        })
    }

    fn archive_reader(&mut self) -> Result<Box<dyn ArchiveReader>, DriverError> {
        Ok(Box::new(SqliteArchiveReader))
    }

    fn relation_count(&mut self) -> Result<usize, DriverError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM pragma_table_list \
                 WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                [],
                |r| r.get(0),
            )
            .map_err(classify)?;
        Ok(usize::try_from(n).unwrap_or_default())
    }

    fn count_rows(&mut self) -> Result<BTreeMap<String, u64>, DriverError> {
        Ok(table_stats(&mut self.conn)?
            .into_iter()
            .map(|(t, d)| (t, d.rows))
            .collect())
    }

    fn restore_method(&mut self, _request: &RestoreRequest) -> Result<Method, DriverError> {
        Ok(Method::InPlace(
            "SQLite copies the backup in as one write transaction of the database".to_owned(),
        ))
    }

    fn restore(
        &mut self,
        archive: &Path,
        _format: &str,
        _method: &Method,
        request: &RestoreRequest,
        expected: &Expected,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RestoreOutcome, RestoreError> {
        let started = Instant::now();
        let after = self.restore_from(archive)?;
        progress(Progress {
            bytes: 0,
            elapsed: started.elapsed(),
        });
        check_content(expected, &after).map_err(RestoreError::Differs)?;
        Ok(RestoreOutcome {
            method: self.restore_method(request)?,
            previous: None,
            revisions: self.read_heads()?.into_iter().collect(),
            tables: after.into_iter().map(|(t, d)| (t, d.rows)).collect(),
        })
    }
}

impl SqliteDriver {
    /// Writes a consistent copy of the database to `path`, a new file (0600) that must not exist,
    /// and returns what the copy holds, table by table.
    pub fn backup_to(&self, path: &Path) -> Result<BTreeMap<String, TableStats>, DriverError> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(DriverError::Io(format!(
                "{} already exists: backups are never overwritten; choose another path",
                path.display()
            )));
        }
        let partial = partial_path(path);
        let result = self.write_backup(&partial).and_then(|stats| {
            // A hard link never replaces an existing file, unlike a rename.
            fs::hard_link(&partial, path).map_err(|e| {
                DriverError::Io(format!(
                    "cannot move the finished backup to {}: {e}",
                    path.display()
                ))
            })?;
            sync_dir(path);
            Ok(stats)
        });
        remove_with_sidecars(&partial);
        result
    }

    fn write_backup(&self, partial: &Path) -> Result<BTreeMap<String, TableStats>, DriverError> {
        let io = |what: &str, e: std::io::Error| {
            DriverError::Io(format!("{what} {}: {e}", partial.display()))
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(partial)
            .map_err(|e| io("cannot create", e))?;
        // The mode given at creation passes through the umask, which may take the owner's own
        // write permission away; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot set the permissions of", e))?;
        drop(file);
        let mut dest = Connection::open_with_flags(
            partial,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(classify)?;
        dest.busy_timeout(self.options().busy_timeout)
            .map_err(classify)?;
        copy_all(&self.conn, &mut dest, self.options().busy_timeout)?;
        // The copy's header says WAL when the source is; a backup is one file.
        dest.query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        })
        .map_err(classify)?;
        quick_check(&dest, partial)?;
        let stats = table_stats(&mut dest)?;
        dest.close().map_err(|(_, e)| classify(e))?;
        File::open(partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("cannot sync", e))?;
        Ok(stats)
    }

    /// Replaces the whole database, atomically, by the backup at `path` (checked first), under
    /// the migration lock, and returns what the database then holds, table by table.
    pub fn restore_from(
        &mut self,
        path: &Path,
    ) -> Result<BTreeMap<String, TableStats>, DriverError> {
        let source = open_read_only(path)?;
        quick_check(&source, path)?;
        let budget = self.options().busy_timeout;
        let took_lock = !self.is_locked();
        migrate_core::wait::wait_for_lock(self, budget, &mut |_| {})?;
        let copied = copy_all(&source, &mut self.conn, budget);
        let result = copied.and_then(|()| table_stats(&mut self.conn));
        if took_lock {
            self.unlock()?;
        }
        result
    }

    /// Row counts and data digests of every table, in one snapshot.
    pub fn table_stats(&mut self) -> Result<BTreeMap<String, TableStats>, DriverError> {
        table_stats(&mut self.conn)
    }
}

/// Row counts and data digests of every table of the database file at `path` (opened read-only),
/// e.g. a backup to verify.
pub fn file_table_stats(path: &Path) -> Result<BTreeMap<String, TableStats>, DriverError> {
    let mut conn = open_read_only(path)?;
    quick_check(&conn, path)?;
    table_stats(&mut conn)
}

/// The revision(s) in the `alembic_version` table of the database file at `path` (opened
/// read-only, so a backup's bytes stay as they are); none when it has no such table.
pub fn file_revisions(path: &Path) -> Result<Vec<String>, DriverError> {
    let conn = open_read_only(path)?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [crate::VERSION_TABLE],
            |r| r.get(0),
        )
        .map_err(classify)?;
    if !has_table {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT version_num FROM {} ORDER BY 1",
            crate::VERSION_TABLE
        ))
        .map_err(classify)?;
    let revisions = stmt
        .query_map([], |r| r.get(0))
        .map_err(classify)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(classify)?;
    Ok(revisions)
}

fn open_read_only(path: &Path) -> Result<Connection, DriverError> {
    if !path.is_file() {
        return Err(DriverError::Io(format!(
            "{} does not exist or is not a file",
            path.display()
        )));
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        DriverError::Io(format!(
            "cannot open {} as a SQLite database: {}",
            path.display(),
            message_of(&e)
        ))
    })
}

/// Refuses a file that is not an intact SQLite database.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), DriverError> {
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| {
            DriverError::Io(format!(
                "{} is not an intact SQLite database: {}",
                path.display(),
                message_of(&e)
            ))
        })?;
    if verdict != "ok" {
        return Err(DriverError::Io(format!(
            "{} is not an intact SQLite database: {verdict}",
            path.display()
        )));
    }
    Ok(())
}

/// Copies every page of `from` into `to` in one backup step (one snapshot of the source, one
/// transaction of the destination), waiting out a busy database within `budget`.
fn copy_all(from: &Connection, to: &mut Connection, budget: Duration) -> Result<(), DriverError> {
    let backup = Backup::new(from, to).map_err(classify)?;
    let started = Instant::now();
    loop {
        match backup.step(-1).map_err(|e| match classify(e) {
            // A WAL destination must have the source's page size.
            DriverError::Statement { message, .. } if message.contains("readonly") => {
                DriverError::Unsupported(format!(
                    "the backup cannot be copied into this database ({message}): their page sizes differ; restore into a new file instead"
                ))
            }
            other => other,
        })? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if started.elapsed() >= budget {
                    return Err(DriverError::LockTimeout(
                        "the database stayed locked by another connection during the backup copy"
                            .to_owned(),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // StepResult is non-exhaustive upstream; treat anything new as "not done yet".
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// Row counts and data digests of every table of `conn`'s main database, in one read
/// transaction.
pub(crate) fn table_stats(
    conn: &mut Connection,
) -> Result<BTreeMap<String, TableStats>, DriverError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Deferred)
        .map_err(classify)?;
    let tables: Vec<(String, bool)> = {
        let mut stmt = tx
            .prepare(
                "SELECT name, wr FROM pragma_table_list \
                 WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                 ORDER BY name",
            )
            .map_err(classify)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .map_err(classify)?
            .collect::<Result<_, _>>()
            .map_err(classify)?;
        rows
    };
    let mut out = BTreeMap::new();
    for (table, without_rowid) in tables {
        let order = if without_rowid {
            let mut stmt = tx
                .prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
                .map_err(classify)?;
            let keys: Vec<String> = stmt
                .query_map([&table], |r| r.get(0))
                .map_err(classify)?
                .collect::<Result<_, _>>()
                .map_err(classify)?;
            keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
        } else {
            "rowid".to_owned()
        };
        let mut stmt = tx
            .prepare(&format!("SELECT * FROM {} ORDER BY {order}", quote(&table)))
            .map_err(classify)?;
        let width = stmt.column_count();
        let mut rows = stmt.query([]).map_err(classify)?;
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        let mut line = String::new();
        while let Some(row) = rows.next().map_err(classify)? {
            line.clear();
            for i in 0..width {
                if i > 0 {
                    line.push('\t');
                }
                render_value(row.get_ref(i).map_err(classify)?, &mut line);
            }
            line.push('\n');
            hasher.update(line.as_bytes());
            count += 1;
        }
        out.insert(
            table,
            TableData {
                rows: count,
                sha256: hex(&hasher.finalize()),
            },
        );
    }
    Ok(out)
}

/// One value in `COPY` text style.
fn render_value(value: ValueRef<'_>, out: &mut String) {
    match value {
        ValueRef::Null => out.push_str("\\N"),
        ValueRef::Integer(i) => out.push_str(&i.to_string()),
        ValueRef::Real(f) => out.push_str(&format!("{f:?}")),
        ValueRef::Text(bytes) => {
            for c in String::from_utf8_lossy(bytes).chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        ValueRef::Blob(bytes) => {
            out.push_str("\\\\x");
            out.push_str(&hex(bytes));
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A private name beside `path` for the backup while it is written.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    // Unique among concurrent backups to the same name, from this process or another.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    name.push(format!(".partial-{}-{nanos}", std::process::id()));
    path.with_file_name(name)
}

/// Removes a database file and whatever journal SQLite may have left beside it.
fn remove_with_sidecars(path: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = fs::remove_file(PathBuf::from(name));
    }
}

/// Makes a new directory entry durable (best effort: not every file system allows it).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
