//! The sessions and SQL of backups and restores: a [`PostgresBackup`] takes a snapshot that
//! `pg_dump` and a counting session read together, and restores by swapping a scratch database
//! in (or in place, in one transaction). The policy around it (staging, manifest, verification,
//! restore decisions) is `migrate-backup`'s, over [`BackupDriver`].
//!
//! A restore holds a session-level advisory lock on the maintenance database, keyed by its
//! target, for as long as it runs. Under that lock no other restore of the target can be
//! running, so every `<target>__restore_*` scratch database is debris of one that was killed,
//! and is dropped, as is an empty `<target>__before_*` (a swap done just before the kill, whose
//! empty predecessor was not dropped yet). A `__before_` that holds anything is the previous
//! content, kept as promised until the operator drops it.

use crate::backup::{ClientTools, Format};
use crate::url::ConnectionSettings;
use migrate_core::backup::{
    check_content, compare_counts, ArchiveFile, ArchiveFormat, ArchiveReader, BackupDriver,
    Expected, Method, Progress, RestoreError, RestoreOutcome, RestoreRequest, Snapshot,
    SnapshotRequest, TableData,
};
use migrate_core::driver::DriverError;
use postgres::Client;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// The compression level a format gets when none is asked for: none.
///
/// On two cores zlib is most of the cost of a backup that decodes what it writes (measured at
/// 1,000,000 users, custom format: `-Z0` about 34 s, `-Z1` 68 s), for three times the disk. An
/// uncompressed directory archive also needs no decode at all (see `read_plain_directory`).
pub const DEFAULT_COMPRESSION: u32 = 0;

/// The backup half of the PostgreSQL driver: plain sessions (backups need none of the engine's
/// settings) and the client tools of the server's major version.
pub struct PostgresBackup {
    settings: ConnectionSettings,
    client: Option<Client>,
}

impl PostgresBackup {
    /// Backups and restores of the database of `settings`; connects when first asked.
    pub fn new(settings: ConnectionSettings) -> Self {
        PostgresBackup {
            settings,
            client: None,
        }
    }

    fn client(&mut self) -> Result<&mut Client, DriverError> {
        if self.client.is_none() {
            self.client = Some(connect(&self.settings)?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| DriverError::Io("no session".to_owned()))
    }
}

fn format_of(name: &str) -> Result<Format, DriverError> {
    Format::parse(name)
        .ok_or_else(|| DriverError::Io(format!("unknown format {name:?} in the manifest")))
}

impl ArchiveReader for ClientTools {
    fn table_of_contents(
        &self,
        archive: &Path,
        format: &str,
    ) -> Result<Option<Vec<String>>, DriverError> {
        match format_of(format)? {
            Format::Plain => Ok(None),
            _ => crate::backup::list_table_data(self, archive).map(Some),
        }
    }

    fn read(
        &self,
        archive: &Path,
        format: &str,
    ) -> Result<BTreeMap<String, TableData>, DriverError> {
        crate::backup::read_archive(self, archive, format_of(format)?)
    }

    fn lists(&self, entries: &[String], table: &str) -> bool {
        let prefix = toc_prefix(table);
        entries.iter().any(|e| e.starts_with(&prefix))
    }
}

impl BackupDriver for PostgresBackup {
    fn redacted(&self) -> String {
        self.settings.redacted()
    }

    fn archive_format(&self, request: &SnapshotRequest) -> Result<ArchiveFormat, String> {
        let name = match (&request.format, request.one_file) {
            (Some(name), _) => name.as_str(),
            (None, true) => "custom",
            (None, false) => "directory",
        };
        let format =
            Format::parse(name).ok_or_else(|| format!("unknown backup format {name:?}"))?;
        if request.compress.is_some() && format == Format::Plain {
            return Err(
                "--compress applies to the custom and directory formats, not to plain".to_owned(),
            );
        }
        Ok(ArchiveFormat {
            name: format.as_str().to_owned(),
            extension: format.extension(),
            compression: (format != Format::Plain)
                .then(|| request.compress.unwrap_or(DEFAULT_COMPRESSION)),
        })
    }

    fn stamp(&mut self) -> Result<String, DriverError> {
        Ok(self
            .client()?
            .query_one(
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS')",
                &[],
            )
            .map_err(pg_error)?
            .get(0))
    }

    fn snapshot(
        &mut self,
        request: &SnapshotRequest,
        staged: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Snapshot, DriverError> {
        let archive_format = self.archive_format(request).map_err(DriverError::Io)?;
        let format = format_of(&archive_format.name)?;
        let settings = self.settings.clone();
        let client = self.client()?;
        let (server_version, major) = server_version(client)?;
        let tools = crate::backup::find_tools(major)?;
        // One snapshot for the counts and for pg_dump: the manifest says exactly what the
        // archive holds.
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(pg_error)?;
        let snapshot: String = tx
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(pg_error)?
            .get(0);
        let created_at: String = tx
            .query_one(
                "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                &[],
            )
            .map_err(pg_error)?
            .get(0);
        let names = table_names(&mut tx)?;
        let started = Instant::now();
        let compress = archive_format.compression.unwrap_or(DEFAULT_COMPRESSION);
        let dump = Dump {
            tools: &tools,
            settings: &settings,
            format,
            jobs: request.jobs,
            compress,
            snapshot: &snapshot,
        };
        // The row counts come from a second session in the same snapshot, while pg_dump runs,
        // instead of a pass over every table before it.
        let (dumped, counted) = std::thread::scope(|scope| {
            let counting = scope.spawn(|| counts_in_snapshot(&settings, &snapshot));
            let dumped = dump.write(staged, &names, started, progress);
            let counted = counting
                .join()
                .unwrap_or_else(|_| Err(DriverError::Io("the row counting stopped".to_owned())));
            (dumped, counted)
        });
        let (archived, files) = dumped?;
        let (counted, revisions) = counted?;
        tx.commit().map_err(pg_error)?;
        Ok(Snapshot {
            format: archive_format,
            created_at,
            server_version,
            tool_version: tools.version.clone(),
            revisions,
            counted,
            archived,
            files,
            checked:
                "a full read of the archive as it was written: every table's rows and data digest"
                    .to_owned(),
        })
    }

    fn archive_reader(&mut self) -> Result<Box<dyn ArchiveReader>, DriverError> {
        let (_, major) = server_version(self.client()?)?;
        Ok(Box::new(crate::backup::find_tools(major)?))
    }

    fn relation_count(&mut self) -> Result<usize, DriverError> {
        relation_count(self.client()?)
    }

    fn count_rows(&mut self) -> Result<BTreeMap<String, u64>, DriverError> {
        table_counts(self.client()?)
    }

    fn restore_method(&mut self, request: &RestoreRequest) -> Result<Method, DriverError> {
        if request.in_place {
            return Ok(Method::InPlace("--in-place was given".to_owned()));
        }
        Ok(match swap_blocker(self.client()?)? {
            Some(reason) => {
                // Said on stdout as the restore's method; a log line would double an error line.
                log::debug!("{reason}: restoring in place, in one transaction (slower)");
                Method::InPlace(reason)
            }
            None => Method::Swap,
        })
    }

    fn restore(
        &mut self,
        archive: &Path,
        format: &str,
        method: &Method,
        request: &RestoreRequest,
        expected: &Expected,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<RestoreOutcome, RestoreError> {
        let format = format_of(format)?;
        let settings = self.settings.clone();
        let client = self.client()?;
        let (_, major) = server_version(client)?;
        let tools = crate::backup::find_tools(major)?;
        let existing = relation_count(client)?;
        if let Method::InPlace(reason) = method {
            return restore_in_place(
                &settings, client, &tools, archive, format, existing, reason, expected, progress,
            );
        }
        // A client that has just disconnected stays listed while its backend exits: a short
        // grace keeps that from reading as a session in the way.
        let grace = Instant::now() + request.session_wait.min(Duration::from_secs(3));
        let mut others = sessions(client, &settings.dbname)?;
        while !others.is_empty() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(100));
            others = sessions(client, &settings.dbname)?;
        }
        if !others.is_empty() {
            return Err(sessions_connected(&settings.dbname, &others));
        }
        // The target is renamed later, which needs every session gone, this one included.
        self.client = None;
        restore_by_swap(
            &settings, &tools, archive, format, expected, existing, request, progress,
        )
    }
}

/// Other sessions are connected to the target, and the swap that replaces it needs none.
fn sessions_connected(database: &str, sessions: &[String]) -> RestoreError {
    RestoreError::SessionsConnected {
        database: database.to_owned(),
        sessions: sessions.to_vec(),
    }
}

fn pg_error(e: postgres::Error) -> DriverError {
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned());
    DriverError::Statement {
        code: e.code().map(|c| c.code().to_owned()),
        message,
    }
}

/// Connects a plain session (backups need none of the engine's settings).
fn connect(settings: &ConnectionSettings) -> Result<Client, DriverError> {
    let client = crate::connect_client(settings, "identity-migrate backup")?;
    // An interruption (SIGTERM) cancels what it runs, so the backup's cleanup runs at once.
    crate::interrupt::cancel_on_interrupt(&client);
    Ok(client)
}

/// The server's `server_version` and its major number.
fn server_version(client: &mut Client) -> Result<(String, u32), DriverError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .map_err(pg_error)?;
    let num: i32 = row.get(1);
    Ok((row.get(0), u32::try_from(num / 10000).unwrap_or_default()))
}

/// Every ordinary table outside the system schemas, as pg_dump names them, with its row count.
fn table_counts(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, u64>, DriverError> {
    let tables = client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
            &[],
        )
        .map_err(pg_error)?;
    let mut counts = BTreeMap::new();
    for row in tables {
        let name: String = row.get(0);
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .map_err(pg_error)?
            .get(0);
        counts.insert(name, u64::try_from(n).unwrap_or_default());
    }
    Ok(counts)
}

/// The revisions in `alembic_version`, or none when the table does not exist. Asked without
/// an error path: an error would abort the snapshot transaction that pg_dump is reading.
fn revisions(client: &mut impl postgres::GenericClient) -> Result<Vec<String>, DriverError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('alembic_version') IS NOT NULL", &[])
        .map_err(pg_error)?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query("SELECT version_num FROM alembic_version ORDER BY 1", &[])
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}

/// Row counts and revisions, read by a session of its own in the snapshot pg_dump reads.
fn counts_in_snapshot(
    settings: &ConnectionSettings,
    snapshot: &str,
) -> Result<(BTreeMap<String, u64>, Vec<String>), DriverError> {
    let mut client = connect(settings)?;
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg_error)?;
    tx.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT {}",
        quote_literal(snapshot)
    ))
    .map_err(pg_error)?;
    let counts = table_counts(&mut tx)?;
    let revisions = revisions(&mut tx)?;
    tx.commit().map_err(pg_error)?;
    Ok((counts, revisions))
}

/// One pg_dump run into the staged path, in the exported snapshot.
struct Dump<'a> {
    tools: &'a ClientTools,
    settings: &'a ConnectionSettings,
    format: Format,
    jobs: u32,
    compress: u32,
    snapshot: &'a str,
}

/// What a dump read back: the archive's per-table data, and its files where the same pass
/// hashed them (else the caller hashes them).
type Dumped = (BTreeMap<String, TableData>, Option<Vec<ArchiveFile>>);

impl Dump<'_> {
    /// Dumps into `staged` and reads back what was written.
    fn write(
        &self,
        staged: &Path,
        names: &BTreeMap<String, String>,
        started: Instant,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Dumped, DriverError> {
        let (tools, settings) = (self.tools, self.settings);
        match self.format {
            Format::Custom => {
                let file = create_private(staged)?;
                let mut sink = io::BufWriter::with_capacity(1 << 20, file);
                let streamed = crate::backup::dump_streaming(
                    tools,
                    settings,
                    self.compress,
                    Some(self.snapshot),
                    &mut sink,
                    &mut |bytes| {
                        progress(Progress {
                            bytes,
                            elapsed: started.elapsed(),
                        })
                    },
                )?;
                let file = sink
                    .into_inner()
                    .map_err(|e| DriverError::Io(format!("writing the backup: {}", e.error())))?;
                file.sync_all()
                    .map_err(|e| DriverError::Io(format!("writing the backup: {e}")))?;
                let on_disk = size_of(staged);
                if on_disk != streamed.bytes {
                    return Err(DriverError::Io(format!(
                        "writing the backup: {on_disk} bytes on disk, {} written",
                        streamed.bytes
                    )));
                }
                let entry = ArchiveFile {
                    path: file_name(staged),
                    bytes: streamed.bytes,
                    sha256: streamed.sha256,
                };
                Ok((streamed.tables, Some(vec![entry])))
            }
            Format::Directory | Format::Plain => {
                crate::backup::dump(
                    tools,
                    settings,
                    self.format,
                    self.jobs,
                    self.compress,
                    Some(self.snapshot),
                    staged,
                    &mut |elapsed| {
                        progress(Progress {
                            bytes: size_of(staged),
                            elapsed,
                        })
                    },
                )?;
                if self.format == Format::Directory && self.compress == 0 {
                    if let Some((tables, files)) = read_plain_directory(tools, staged, names)? {
                        return Ok((tables, Some(files)));
                    }
                }
                let tables = crate::backup::read_archive(tools, staged, self.format)?;
                Ok((tables, None))
            }
        }
    }
}

/// Every table of the database as `schema table owner`, the way `pg_restore --list` names its
/// data, with the name the manifest gives it. Empty when two tables would read the same.
fn table_names(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, String>, DriverError> {
    let rows = client
        .query(
            "SELECT n.nspname || ' ' || c.relname || ' ' || pg_get_userbyid(c.relowner), \
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .map_err(pg_error)?;
    let names: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(if names.len() == rows.len() {
        names
    } else {
        BTreeMap::new()
    })
}

/// An uncompressed directory archive, read once: every data file is the table's COPY data as
/// pg_restore would send it, so one SHA-256 pass per file gives the file's checksum and the
/// table's rows and data digest, without a decode through pg_restore. The files are shared out
/// over the CPUs. `None` when the archive holds anything else (large objects, a table the
/// names do not tell apart): the caller decodes it with pg_restore instead.
#[allow(clippy::type_complexity)]
fn read_plain_directory(
    tools: &ClientTools,
    archive: &Path,
    names: &BTreeMap<String, String>,
) -> Result<Option<(BTreeMap<String, TableData>, Vec<ArchiveFile>)>, DriverError> {
    let mut work: Vec<(String, String)> = Vec::new();
    for (id, entry) in crate::backup::list_table_data_ids(tools, archive)? {
        match names.get(&entry) {
            Some(table) => work.push((format!("{id}.dat"), table.clone())),
            None => return Ok(None),
        }
    }
    let mut present: Vec<String> = fs::read_dir(archive)
        .map_err(|e| DriverError::Io(format!("cannot list {}: {e}", archive.display())))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    let mut known: Vec<String> = work.iter().map(|(f, _)| f.clone()).collect();
    known.push("toc.dat".to_owned());
    known.sort();
    if present != known {
        return Ok(None);
    }
    // Biggest first, so that the CPUs finish together.
    work.sort_by_key(|(f, _)| std::cmp::Reverse(size_of(&archive.join(f))));
    let queue = std::sync::Mutex::new(work);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let results: Vec<Result<Vec<(ArchiveFile, String, TableData)>, DriverError>> =
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                            let Some((file, table)) = next else {
                                return Ok(done);
                            };
                            let (bytes, sha256, data) =
                                crate::backup::read_data_file(&archive.join(&file)).map_err(
                                    |e| DriverError::Io(format!("the backup is not intact: {e}")),
                                )?;
                            done.push((
                                ArchiveFile {
                                    path: file,
                                    bytes,
                                    sha256,
                                },
                                table,
                                data,
                            ));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(DriverError::Io("reading the archive stopped".to_owned()))
                    })
                })
                .collect()
        });
    let mut tables = BTreeMap::new();
    let mut files = vec![hash_small_file(archive, "toc.dat")?];
    for result in results {
        for (entry, table, data) in result? {
            files.push(entry);
            tables.insert(table, data);
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Some((tables, files)))
}

/// A string as an SQL literal.
fn quote_literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// A name as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema table ` as `pg_restore --list` writes a TABLE DATA entry of the manifest's
/// `schema.table` (quoted where needed): unquoted, before the owner.
fn toc_prefix(table: &str) -> String {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = table.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(p) = parts.last_mut() {
                    p.push('"');
                }
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            _ => {
                if let Some(p) = parts.last_mut() {
                    p.push(c);
                }
            }
        }
    }
    format!("{} ", parts.join(" "))
}

/// Why this role cannot restore by swapping databases, if it cannot.
fn swap_blocker(client: &mut Client) -> Result<Option<String>, DriverError> {
    let row = client
        .query_one(
            "SELECT r.rolsuper OR r.rolcreatedb, \
                    r.rolsuper OR pg_has_role(current_user, d.datdba, 'USAGE'), \
                    current_user::text, pg_get_userbyid(d.datdba)::text \
             FROM pg_roles r, pg_database d \
             WHERE r.rolname = current_user AND d.datname = current_database()",
            &[],
        )
        .map_err(pg_error)?;
    let (createdb, owner, user, dba): (bool, bool, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(if !createdb {
        Some(format!(
            "the role {user} lacks CREATEDB, which the restore into a new database needs (ALTER ROLE {user} CREATEDB)"
        ))
    } else if !owner {
        Some(format!(
            "the role {user} does not own the database (its owner is {dba}), and only the owner may rename it"
        ))
    } else {
        None
    })
}

/// Relations outside the system schemas: tables, sequences, views... anything a restore would
/// replace.
fn relation_count(client: &mut Client) -> Result<usize, DriverError> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    Ok(usize::try_from(n).unwrap_or_default())
}

/// The other sessions connected to `database`, as `pid (application, user)`.
fn sessions(client: &mut Client, database: &str) -> Result<Vec<String>, DriverError> {
    Ok(client
        .query(
            "SELECT pid::text || ' (' || coalesce(nullif(application_name, ''), 'no application name') \
             || ', ' || coalesce(usename::text, '?') || ')' FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() ORDER BY pid",
            &[&database],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The old way, for roles that cannot create or rename databases: `pg_restore
/// --single-transaction` into the target itself (the caller has verified the archive in full
/// and taken a safety backup of what the target held).
#[allow(clippy::too_many_arguments)]
fn restore_in_place(
    settings: &ConnectionSettings,
    client: &mut Client,
    tools: &ClientTools,
    path: &Path,
    format: Format,
    existing: usize,
    reason: &str,
    expected: &Expected,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreOutcome, RestoreError> {
    let started = Instant::now();
    crate::backup::restore(
        tools,
        settings,
        path,
        format,
        existing > 0,
        &mut |elapsed| {
            progress(Progress {
                bytes: 0,
                elapsed: elapsed.max(started.elapsed()),
            })
        },
    )?;
    let tables = table_counts(client)?;
    let restored: BTreeMap<String, u64> = tables
        .iter()
        .filter(|(t, _)| expected.tables.contains_key(*t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    compare_counts(&expected.tables, &restored).map_err(RestoreError::Differs)?;
    Ok(RestoreOutcome {
        revisions: revisions(client)?,
        method: Method::InPlace(reason.to_owned()),
        previous: None,
        tables,
    })
}

/// A session on the server's maintenance database (`postgres`, else `template1`), from which
/// databases are created, renamed and dropped.
fn connect_maintenance(settings: &ConnectionSettings) -> Result<Client, DriverError> {
    let mut last = None;
    // Never the target itself: a session on it would stop the rename.
    for name in ["postgres", "template1"]
        .into_iter()
        .filter(|n| *n != settings.dbname)
    {
        let mut other = settings.clone();
        other.dbname = name.to_owned();
        match connect(&other) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| DriverError::Io("no maintenance database".to_owned())))
}

/// `<target><infix><stamp>`, shortened to PostgreSQL's 63-byte names, with `_2`, `_3`... if
/// taken.
fn free_database_name(
    admin: &mut Client,
    target: &str,
    infix: &str,
    stamp: &str,
) -> Result<String, DriverError> {
    for n in 1..100 {
        let suffix = if n == 1 {
            format!("{infix}{stamp}")
        } else {
            format!("{infix}{stamp}_{n}")
        };
        let mut keep = 63usize.saturating_sub(suffix.len()).min(target.len());
        while !target.is_char_boundary(keep) {
            keep -= 1;
        }
        let name = format!("{}{suffix}", &target[..keep]);
        let taken: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&name],
            )
            .map_err(pg_error)?
            .get(0);
        if !taken {
            return Ok(name);
        }
    }
    Err(DriverError::Io(format!(
        "no free database name {target}{infix}{stamp}_N: drop the old ones"
    )))
}

/// What belongs to a database rather than to its content, which pg_dump does not write
/// without `--create`: carried over from the target to the scratch database.
struct DatabaseProperties {
    owner: String,
    create_options: String,
    connection_limit: i32,
    comment: Option<String>,
}

fn database_properties(
    admin: &mut Client,
    database: &str,
) -> Result<DatabaseProperties, DriverError> {
    // Through to_jsonb: the locale columns differ between server versions.
    let row = admin
        .query_one(
            "SELECT pg_get_userbyid(d.datdba)::text, pg_encoding_to_char(d.encoding)::text, \
                    d.datcollate::text, d.datctype::text, \
                    to_jsonb(d)->>'datlocprovider', \
                    coalesce(to_jsonb(d)->>'daticulocale', to_jsonb(d)->>'datlocale'), \
                    t.spcname::text, d.datconnlimit, shobj_description(d.oid, 'pg_database') \
             FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace \
             WHERE d.datname = $1",
            &[&database],
        )
        .map_err(pg_error)?;
    let owner: String = row.get(0);
    let mut options = format!(
        "TEMPLATE template0 OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(&owner),
        quote_literal(&row.get::<_, String>(1)),
        quote_literal(&row.get::<_, String>(2)),
        quote_literal(&row.get::<_, String>(3)),
    );
    match row.get::<_, Option<String>>(4).as_deref() {
        Some("i") => {
            options.push_str(" LOCALE_PROVIDER icu");
            if let Some(icu) = row.get::<_, Option<String>>(5) {
                let _ = write!(options, " ICU_LOCALE {}", quote_literal(&icu));
            }
        }
        Some("c") => options.push_str(" LOCALE_PROVIDER libc"),
        _ => {}
    }
    let tablespace: String = row.get(6);
    if tablespace != "pg_default" {
        let _ = write!(options, " TABLESPACE {}", quote_ident(&tablespace));
    }
    Ok(DatabaseProperties {
        owner,
        create_options: options,
        connection_limit: row.get(7),
        comment: row.get(8),
    })
}

/// Grants on a database as `grantee privilege grantable` lines, grantor left out (a grant
/// carried over is recorded as the owner's).
fn database_grants(admin: &mut Client, database: &str) -> Result<Vec<String>, DriverError> {
    let mut grants: Vec<String> = admin
        .query(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END \
                    || ' ' || a.privilege_type || ' ' || a.is_grantable::text \
             FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1",
            &[&database],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    grants.sort();
    Ok(grants)
}

/// Database settings (`ALTER DATABASE ... SET`, and `ALTER ROLE ... IN DATABASE ... SET`) as
/// (role or empty, `name=value` entries).
fn database_settings(
    admin: &mut Client,
    database: &str,
) -> Result<Vec<(String, Vec<String>)>, DriverError> {
    let mut settings: Vec<(String, Vec<String>)> = admin
        .query(
            "SELECT CASE WHEN s.setrole = 0 THEN '' ELSE pg_get_userbyid(s.setrole)::text END, \
                    s.setconfig::text[] \
             FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase \
             WHERE d.datname = $1",
            &[&database],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    settings.sort();
    Ok(settings)
}

/// Settings whose value is a list of quoted names: written element by element, as pg_dump does.
const LIST_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `name=value` of pg_db_role_setting as the value part of `SET name TO ...`.
fn setting_value(name: &str, value: &str) -> String {
    if !LIST_SETTINGS.contains(&name) {
        return quote_literal(value);
    }
    // The stored list: elements separated by commas, double-quoted where needed.
    let mut items = Vec::new();
    let mut item = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                item.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut item).trim().to_owned()),
            _ => item.push(c),
        }
    }
    items.push(item.trim().to_owned());
    items
        .iter()
        .map(|i| quote_literal(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Gives the scratch database the target's settings, grants, connection limit and comment,
/// then checks that they match.
fn carry_over(
    admin: &mut Client,
    target: &str,
    scratch: &str,
    props: &DatabaseProperties,
) -> Result<(), DriverError> {
    let db = quote_ident(scratch);
    let mut sql = String::new();
    if props.connection_limit != -1 {
        let _ = writeln!(
            sql,
            "ALTER DATABASE {db} CONNECTION LIMIT {};",
            props.connection_limit
        );
    }
    if let Some(comment) = &props.comment {
        let _ = writeln!(
            sql,
            "COMMENT ON DATABASE {db} IS {};",
            quote_literal(comment)
        );
    }
    let acl_set: bool = admin
        .query_one(
            "SELECT datacl IS NOT NULL FROM pg_database WHERE datname = $1",
            &[&target],
        )
        .map_err(pg_error)?
        .get(0);
    let grants = database_grants(admin, target)?;
    if acl_set {
        // An explicit list replaces the defaults: start from nothing, then grant each.
        let _ = writeln!(
            sql,
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC; REVOKE ALL ON DATABASE {db} FROM {};",
            quote_ident(&props.owner)
        );
        for grant in &grants {
            let mut parts = grant.rsplitn(3, ' ');
            let (grantable, privilege, grantee) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let _ = writeln!(
                sql,
                "GRANT {privilege} ON DATABASE {db} TO {grantee}{};",
                if grantable == "true" {
                    " WITH GRANT OPTION"
                } else {
                    ""
                }
            );
        }
    }
    let settings = database_settings(admin, target)?;
    for (role, entries) in &settings {
        let on = if role.is_empty() {
            format!("DATABASE {db}")
        } else {
            format!("ROLE {} IN DATABASE {db}", quote_ident(role))
        };
        for entry in entries {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let _ = writeln!(
                sql,
                "ALTER {on} SET {} TO {};",
                quote_ident(name),
                setting_value(name, value)
            );
        }
    }
    if !sql.is_empty() {
        admin.batch_execute(&sql).map_err(|e| {
            DriverError::Io(format!(
                "cannot give the restored database the settings and grants of {target}: {}",
                pg_error(e)
            ))
        })?;
    }
    let same_grants = !acl_set || database_grants(admin, scratch)? == grants;
    if !same_grants || database_settings(admin, scratch)? != settings {
        return Err(DriverError::Io(format!(
            "the restored database's {} differ from those of {target} after carrying them over",
            if same_grants { "settings" } else { "grants" }
        )));
    }
    Ok(())
}

/// Restores into a scratch database beside the target, checks it, and swaps it in.
#[allow(clippy::too_many_arguments)]
fn restore_by_swap(
    settings: &ConnectionSettings,
    tools: &ClientTools,
    path: &Path,
    format: Format,
    expected: &Expected,
    existing: usize,
    options: &RestoreRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<RestoreOutcome, RestoreError> {
    let target = settings.dbname.clone();
    let mut admin = connect_maintenance(settings)?;
    lock_restore(&mut admin, &target)?;
    drop_scratch(&mut admin, settings, &target)?;
    let props = database_properties(&mut admin, &target)?;
    let stamp: String = admin
        .query_one(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS')",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    let scratch = free_database_name(&mut admin, &target, "__restore_", &stamp)?;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} {}",
            quote_ident(&scratch),
            props.create_options
        ))
        .map_err(|e| {
            DriverError::Io(format!(
                "cannot create the scratch database {scratch} to restore into: {}",
                pg_error(e)
            ))
        })?;
    log::debug!("restoring into the scratch database {scratch}");
    let mut scratch_settings = settings.clone();
    scratch_settings.dbname.clone_from(&scratch);
    let swapped = fill_and_swap(
        &mut admin,
        &target,
        &scratch_settings,
        tools,
        path,
        format,
        expected,
        &props,
        &stamp,
        options,
        progress,
    );
    let (tables, revisions, before) = match swapped {
        Ok(done) => done,
        Err(e) => {
            // Leave the target exactly as it was: the scratch database goes, whatever it holds.
            // Once more if an interruption's cancel, meant for the work, landed on the drop.
            let drop_scratch = |admin: &mut Client| {
                admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&scratch)
                ))
            };
            let dropped = match drop_scratch(&mut admin) {
                Err(d) if d.code() == Some(&postgres::error::SqlState::QUERY_CANCELED) => {
                    drop_scratch(&mut admin)
                }
                other => other,
            };
            if let Err(d) = dropped {
                log::warn!(
                    "could not drop the scratch database {scratch}: {}; drop it by hand",
                    pg_error(d)
                );
            }
            return Err(e);
        }
    };
    let mut before_settings = settings.clone();
    before_settings.dbname.clone_from(&before);
    // Empty when the restore began, but a session may have come and gone since: look again.
    let still_empty = existing == 0
        && connect(&before_settings)
            .and_then(|mut c| relation_count(&mut c))
            .is_ok_and(|n| n == 0);
    let previous = if still_empty {
        // It holds no relation: nothing is lost by dropping it.
        match drop_database_soon(&mut admin, &before) {
            Ok(()) => None,
            Err(e) => {
                log::warn!(
                    "could not drop the previous, empty database {before}: {}",
                    pg_error(e)
                );
                Some(before)
            }
        }
    } else {
        Some(before)
    };
    Ok(RestoreOutcome {
        method: Method::Swap,
        previous,
        revisions,
        tables,
    })
}

/// What a swap leaves: the restored row counts and revisions, and the previous database's name.
type Swapped = (BTreeMap<String, u64>, Vec<String>, String);

/// Drops a database that no session should use, giving the backend of a session that just
/// closed (this process's own) two seconds to go.
fn drop_database_soon(admin: &mut Client, name: &str) -> Result<(), postgres::Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match admin.batch_execute(&format!("DROP DATABASE {}", quote_ident(name))) {
            Err(e)
                if e.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// The part of the swap that can fail without consequence: restore and decode side by side,
/// count, carry the database's properties over, and rename in one transaction.
#[allow(clippy::too_many_arguments)]
fn fill_and_swap(
    admin: &mut Client,
    target: &str,
    scratch_settings: &ConnectionSettings,
    tools: &ClientTools,
    path: &Path,
    format: Format,
    expected: &Expected,
    props: &DatabaseProperties,
    stamp: &str,
    options: &RestoreRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Swapped, RestoreError> {
    let scratch = scratch_settings.dbname.as_str();
    let started = Instant::now();
    // The full decode runs beside the restore, on the other core: it checks the data digests
    // of the archive (which the checksum alone cannot, behind a rewritten manifest) without
    // adding its time to the restore's.
    let (restored, decoded) = std::thread::scope(|scope| {
        let decoding = scope.spawn(|| crate::backup::read_archive(tools, path, format));
        let restored = crate::backup::restore_parallel(
            tools,
            scratch_settings,
            path,
            format,
            options.jobs,
            &mut |elapsed| {
                progress(Progress {
                    bytes: 0,
                    elapsed: elapsed.max(started.elapsed()),
                })
            },
        );
        let decoded = decoding
            .join()
            .unwrap_or_else(|_| Err(DriverError::Io("the archive reader stopped".to_owned())));
        (restored, decoded)
    });
    check_decoded(expected, decoded)?;
    restored?;
    let mut client = connect(scratch_settings)?;
    let tables = table_counts(&mut client)?;
    compare_counts(&expected.tables, &tables).map_err(RestoreError::Differs)?;
    let revisions = revisions(&mut client)?;
    drop(client);
    carry_over(admin, target, scratch, props)?;
    let before = free_database_name(admin, target, "__before_", stamp)?;
    swap(admin, target, scratch, &before, options.session_wait)?;
    Ok((tables, revisions, before))
}

/// Compares the full decode that ran beside the restore with what the manifest says.
fn check_decoded(
    expected: &Expected,
    decoded: Result<BTreeMap<String, TableData>, DriverError>,
) -> Result<(), RestoreError> {
    decoded
        .map_err(|e| format!("the archive cannot be read whole ({e})"))
        .and_then(|d| check_content(expected, &d))
        .map_err(|m| RestoreError::Corrupt(format!("{m}; nothing was restored")))
}

/// Renames `target` to `before` and `scratch` to `target` in one transaction, once no session
/// is connected to either (renaming needs that), waiting up to `wait` for them to leave.
fn swap(
    admin: &mut Client,
    target: &str,
    scratch: &str,
    before: &str,
    wait: Duration,
) -> Result<(), RestoreError> {
    let deadline = Instant::now() + wait;
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}",
        quote_ident(target),
        quote_ident(before),
        quote_ident(scratch),
        quote_ident(target)
    );
    let mut logged = false;
    loop {
        let mut others = sessions(admin, target)?;
        others.extend(sessions(admin, scratch)?);
        if others.is_empty() {
            let renamed = admin
                .transaction()
                .and_then(|mut tx| tx.batch_execute(&sql).and_then(|()| tx.commit()));
            match renamed {
                Ok(()) => return Ok(()),
                // Someone connected between the look and the rename: look again.
                Err(e) if e.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE) => {
                    if Instant::now() >= deadline {
                        return Err(sessions_connected(target, &[pg_error(e).to_string()]));
                    }
                }
                Err(e) => return Err(pg_error(e).into()),
            }
        } else if Instant::now() >= deadline {
            return Err(sessions_connected(target, &others));
        } else if !logged && Instant::now() + Duration::from_secs(1) < deadline {
            logged = true;
            log::debug!(
                "waiting up to {} s for {} session(s) to leave {target} before the swap",
                wait.as_secs(),
                others.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}

/// Size and SHA-256 of a small file of a directory archive (its table of contents).
fn hash_small_file(archive: &Path, name: &str) -> Result<ArchiveFile, DriverError> {
    use sha2::{Digest, Sha256};
    let path = archive.join(name);
    let bytes = fs::read(&path)
        .map_err(|e| DriverError::Io(format!("cannot read {}: {e}", path.display())))?;
    Ok(ArchiveFile {
        path: name.to_owned(),
        bytes: bytes.len() as u64,
        sha256: Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        fs::read_dir(path)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    } else {
        fs::metadata(path).map_or(0, |m| m.len())
    }
}

/// Creates a file readable by its owner only, whatever the umask.
fn create_private(path: &Path) -> Result<File, DriverError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| DriverError::Io(format!("cannot create {}: {e}", path.display())))
}

/// The advisory lock class of restores (the key is the target's name hashed by the server).
const RESTORE_LOCK_CLASS: i32 = 0x1d3a_2a18;

/// Takes the restore lock of `target` on the maintenance session `admin` (held until it
/// disconnects); refused if another restore of the same target holds it.
fn lock_restore(admin: &mut Client, target: &str) -> Result<(), DriverError> {
    let got: bool = admin
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&RESTORE_LOCK_CLASS, &target],
        )
        .map_err(pg_error)?
        .get(0);
    if got {
        Ok(())
    } else {
        Err(DriverError::Io(format!(
            "another restore of {target} is running: wait for it to finish"
        )))
    }
}

/// Drops the scratch databases of interrupted restores of `target` (and empty predecessors);
/// the caller holds the restore lock of `target`. Returns their names.
fn drop_scratch(
    admin: &mut Client,
    settings: &ConnectionSettings,
    target: &str,
) -> Result<Vec<String>, DriverError> {
    let names: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE '%\\_\\_restore\\_%' OR datname LIKE '%\\_\\_before\\_%' ORDER BY 1",
            &[],
        )
        .map_err(pg_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dropped = Vec::new();
    for name in names {
        let Some((kind, prefix)) = scratch_of(&name) else {
            continue;
        };
        // Names are cut to 63 bytes: a long target's prefix stands for it.
        if !(prefix == target || (name.len() == 63 && target.starts_with(prefix))) {
            continue;
        }
        if kind == "__before_" && !is_empty(settings, &name) {
            log::info!(
                "kept {name}: the database an earlier restore of {target} replaced (DROP DATABASE \"{name}\" once it is no longer needed)"
            );
            continue;
        }
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            ))
            .map_err(pg_error)?;
        log::info!(
            "dropped {name}: left by an interrupted restore of {target} ({})",
            if kind == "__restore_" {
                "its scratch database"
            } else {
                "the empty database it replaced"
            }
        );
        dropped.push(name);
    }
    Ok(dropped)
}

/// `(infix, target)` of `<target>__restore_<stamp>` or `<target>__before_<stamp>`.
fn scratch_of(name: &str) -> Option<(&'static str, &str)> {
    ["__restore_", "__before_"].into_iter().find_map(|infix| {
        let (prefix, stamp) = name.rsplit_once(infix)?;
        let stamp_ok = stamp.chars().all(|c| c.is_ascii_digit() || c == '_') && stamp.len() >= 15;
        stamp_ok.then_some((infix, prefix))
    })
}

fn is_empty(settings: &ConnectionSettings, name: &str) -> bool {
    let mut other = settings.clone();
    other.dbname = name.to_owned();
    connect(&other)
        .and_then(|mut c| relation_count(&mut c))
        .is_ok_and(|n| n == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_recognised() {
        assert_eq!(
            scratch_of("app__restore_20260101_120000"),
            Some(("__restore_", "app"))
        );
        assert_eq!(
            scratch_of("app__before_20260101_120000_2"),
            Some(("__before_", "app"))
        );
        assert_eq!(scratch_of("app__before_yesterday"), None);
    }

    #[test]
    fn table_of_contents_entries_are_matched_unquoted() {
        assert_eq!(toc_prefix("public.users"), "public users ");
        assert_eq!(toc_prefix("audit.\"Event Log\""), "audit Event Log ");
        assert_eq!(toc_prefix("s.\"a\"\"b.c\""), "s a\"b.c ");
    }
}
