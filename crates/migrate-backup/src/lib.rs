//! Backups that operators can trust, and restores that never lose a row.
//!
//! - A backup is written in a private (0700) staging directory and renamed into place only when
//!   it is complete and verified; its files are 0600 whatever the umask. A failure, a full disk or
//!   a killed process leaves nothing that looks like a backup.
//! - Its manifest records the SHA-256 and size of every file, the server and `pg_dump` versions,
//!   the database's revision(s), and the row count of every table, counted in the same snapshot
//!   that `pg_dump` reads.
//! - The backup decodes every byte it writes in the same pass, and hashes it there too: its
//!   per-table row counts and data digests come from the archive itself.
//! - `verify` checks every file's SHA-256 and reads the archive's table of contents (fast);
//!   [`Check::Full`] also decodes the whole archive and compares its row counts and data
//!   digests, which catches corruption even behind a manifest rewritten to match it.
//! - `restore` checks the checksums first and touches nothing if that fails. It then restores
//!   with parallel sessions into a scratch database while decoding the archive in full, checks
//!   both against the manifest, and swaps the scratch database in by renaming, in one
//!   transaction. Without the rights for that, it restores in place in one transaction.
//! - [`sqlite`] does the same for a SQLite database, through SQLite's online backup API, with
//!   the same manifest.

mod manifest;
pub mod sqlite;

pub use manifest::{FileEntry, Manifest};
pub use migrate_postgres::backup::Format;

use migrate_core::driver::DriverError;
use migrate_postgres::backup::{self as pg, ClientTools};
use migrate_postgres::url::ConnectionSettings;
use postgres::Client;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a backup, a verification or a restore failed. Each message says what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackupError {
    /// The database or a client tool failed.
    Driver(DriverError),
    /// A file could not be read or written.
    Io(String),
    /// The destination already exists; backups are never overwritten.
    Exists(PathBuf),
    /// The archive has no manifest beside it.
    NoManifest(PathBuf),
    /// The archive does not match its manifest, or cannot be read whole.
    Corrupt(String),
    /// The target database holds tables (or other relations) and `--yes` was not given.
    NotEmpty {
        /// How many relations it holds.
        tables: usize,
    },
    /// Other sessions are connected to the target, and the swap that replaces it needs none.
    SessionsConnected {
        /// The target database.
        database: String,
        /// The sessions, as `pid (application, user)`.
        sessions: Vec<String>,
    },
    /// The restored database does not hold what the manifest says.
    RestoredCountsDiffer(String),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Driver(e) => e.fmt(f),
            BackupError::Io(m) => f.write_str(m),
            BackupError::Exists(p) => write!(
                f,
                "{} already exists: backups are never overwritten; choose another --output",
                p.display()
            ),
            BackupError::NoManifest(p) => write!(
                f,
                "{} has no manifest ({}): it is not a complete backup made by identity-migrate",
                p.display(),
                manifest_path(p).display()
            ),
            BackupError::Corrupt(m) => write!(f, "the backup is not intact: {m}"),
            BackupError::NotEmpty { tables } => write!(
                f,
                "the target database already holds {tables} table(s) or other relation(s): pass --yes to replace them (the previous database is kept under another name)"
            ),
            BackupError::SessionsConnected { database, sessions } => write!(
                f,
                "{} other session(s) are connected to {database} ({}): the restore replaces the database by renaming, which needs them closed; stop them and run it again, or pass --in-place (one transaction, slower)",
                sessions.len(),
                sessions.join(", ")
            ),
            BackupError::RestoredCountsDiffer(m) => write!(
                f,
                "the restore finished but the database does not hold what the backup does: {m}"
            ),
        }
    }
}

impl std::error::Error for BackupError {}

impl From<DriverError> for BackupError {
    fn from(e: DriverError) -> Self {
        BackupError::Driver(e)
    }
}

fn pg_error(e: postgres::Error) -> BackupError {
    let message = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_owned());
    BackupError::Driver(DriverError::Statement {
        code: e.code().map(|c| c.code().to_owned()),
        message,
    })
}

/// The manifest's path: `<archive>.manifest.json` beside the archive.
pub fn manifest_path(archive: &Path) -> PathBuf {
    let mut name = archive
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".manifest.json");
    archive.with_file_name(name)
}

/// What to back up, where, and how.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// Directory for the default file name.
    pub dir: PathBuf,
    /// An explicit path instead of the default name in `dir`.
    pub output: Option<PathBuf>,
    /// The archive format.
    pub format: Format,
    /// Parallel jobs (directory format only).
    pub jobs: u32,
    /// zlib's level, 0–9, for the custom and directory formats; `None` takes the format's
    /// default ([`default_compression`]).
    pub compress: Option<u32>,
    /// The tool's version, for the manifest.
    pub tool_version: String,
}

/// The compression level a format gets when none is asked for: none.
///
/// On two cores zlib is most of the cost of a backup that decodes what it writes (measured at
/// 1,000,000 users, custom format: `-Z0` about 34 s, `-Z1` 68 s), for three times the disk. An
/// uncompressed directory archive also needs no decode at all (see `read_plain_directory`).
pub fn default_compression(format: Format) -> u32 {
    let _ = format;
    0
}

/// How far a long operation has come, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes written so far (0 when unknown).
    pub bytes: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The archive (a file, or a directory for the directory format).
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// Connects a plain session (backups need none of the engine's settings).
fn connect(settings: &ConnectionSettings) -> Result<Client, BackupError> {
    migrate_postgres::connect_client(settings, "identity-migrate backup")
        .map_err(BackupError::Driver)
}

/// The server's `server_version` and its major number.
fn server_version(client: &mut Client) -> Result<(String, u32), BackupError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .map_err(pg_error)?;
    let num: i32 = row.get(1);
    Ok((row.get(0), u32::try_from(num / 10000).unwrap_or_default()))
}

/// Finds the client tools matching the server that `settings` names.
pub fn tools_for(settings: &ConnectionSettings) -> Result<ClientTools, BackupError> {
    let mut client = connect(settings)?;
    let (_, major) = server_version(&mut client)?;
    Ok(pg::find_tools(major)?)
}

/// Every ordinary table outside the system schemas, as pg_dump names them, with its row count.
fn table_counts(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, u64>, BackupError> {
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
fn revisions(client: &mut impl postgres::GenericClient) -> Result<Vec<String>, BackupError> {
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

/// Takes a backup: checks the tools and the destination before any work, dumps in one snapshot,
/// verifies, and only then puts the archive and its manifest in place.
pub fn backup(
    settings: &ConnectionSettings,
    request: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Backup, BackupError> {
    let mut client = connect(settings)?;
    let (server_version, major) = server_version(&mut client)?;
    let tools = pg::find_tools(major)?;
    let stamp: String = client
        .query_one(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'), \
             to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[],
        )
        .map_err(pg_error)?
        .get(0);
    let path = match &request.output {
        Some(p) => p.clone(),
        None => free_default_name(&request.dir, &stamp, request.format.extension()),
    };
    for existing in [&path, &manifest_path(&path)] {
        if existing.exists() {
            return Err(BackupError::Exists(existing.clone()));
        }
    }
    let staging = Staging::create(&path)?;

    // One snapshot for the counts and for pg_dump: the manifest says exactly what the archive holds.
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
    let staged = staging.dir.join(file_name(&path));
    let compress = request
        .compress
        .unwrap_or_else(|| default_compression(request.format));
    // The row counts come from a second session in the same snapshot, while pg_dump runs,
    // instead of a pass over every table before it.
    let (dumped, counted) = std::thread::scope(|scope| {
        let counting = scope.spawn(|| counts_in_snapshot(settings, &snapshot));
        let dumped = dump_into(
            &tools, settings, request, compress, &snapshot, &staged, &names, started, progress,
        );
        let counted = counting
            .join()
            .unwrap_or_else(|_| Err(BackupError::Io("the row counting stopped".to_owned())));
        (dumped, counted)
    });
    let (archived, files) = dumped?;
    let (expected, revisions) = counted?;
    tx.commit().map_err(pg_error)?;
    let (archived_rows, table_sha256) = split(archived);
    compare_counts(&expected, &archived_rows).map_err(BackupError::Corrupt)?;

    let manifest = Manifest {
        format_version: 1,
        tool: "identity-migrate".to_owned(),
        tool_version: request.tool_version.clone(),
        created_at,
        database: settings.redacted(),
        server_version,
        pg_dump_version: tools.version.clone(),
        format: request.format.as_str().to_owned(),
        revisions,
        tables: expected,
        table_sha256,
        files,
    };
    let staged_manifest = manifest_path(&staged);
    write_private(&staged_manifest, &manifest.to_json())?;
    // The archive first, then its manifest: an archive without a manifest is never trusted.
    rename(&staged, &path)?;
    rename(&staged_manifest, &manifest_path(&path))?;
    staging.finish();
    Ok(Backup { path, manifest })
}

/// Row counts and revisions, read by a session of its own in the snapshot pg_dump reads.
fn counts_in_snapshot(
    settings: &ConnectionSettings,
    snapshot: &str,
) -> Result<(BTreeMap<String, u64>, Vec<String>), BackupError> {
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

/// Dumps into the staged path and reads back what was written: the archive's per-table data,
/// and the size and SHA-256 of every file.
#[allow(clippy::too_many_arguments)]
fn dump_into(
    tools: &ClientTools,
    settings: &ConnectionSettings,
    request: &BackupRequest,
    compress: u32,
    snapshot: &str,
    staged: &Path,
    names: &BTreeMap<String, String>,
    started: Instant,
    progress: &mut dyn FnMut(Progress),
) -> Result<(BTreeMap<String, pg::TableData>, Vec<FileEntry>), BackupError> {
    match request.format {
        Format::Custom => {
            let file = create_private(staged)?;
            let mut sink = io::BufWriter::with_capacity(1 << 20, file);
            let streamed = pg::dump_streaming(
                tools,
                settings,
                compress,
                Some(snapshot),
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
                .map_err(|e| BackupError::Io(format!("writing the backup: {}", e.error())))?;
            file.sync_all()
                .map_err(|e| BackupError::Io(format!("writing the backup: {e}")))?;
            let on_disk = size_of(staged);
            if on_disk != streamed.bytes {
                return Err(BackupError::Io(format!(
                    "writing the backup: {on_disk} bytes on disk, {} written",
                    streamed.bytes
                )));
            }
            let entry = FileEntry {
                path: file_name(staged).to_string_lossy().into_owned(),
                bytes: streamed.bytes,
                sha256: streamed.sha256,
            };
            Ok((streamed.tables, vec![entry]))
        }
        Format::Directory | Format::Plain => {
            pg::dump(
                tools,
                settings,
                request.format,
                request.jobs,
                compress,
                Some(snapshot),
                staged,
                &mut |elapsed| {
                    progress(Progress {
                        bytes: size_of(staged),
                        elapsed,
                    })
                },
            )?;
            restrict(staged)?;
            if request.format == Format::Directory && compress == 0 {
                if let Some(read) = read_plain_directory(tools, staged, names)? {
                    return Ok(read);
                }
            }
            let tables = pg::read_archive(tools, staged, request.format)?;
            Ok((tables, hash_files(staged)?))
        }
    }
}

/// Every table of the database as `schema table owner`, the way `pg_restore --list` names its
/// data, with the name the manifest gives it. Empty when two tables would read the same.
fn table_names(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, String>, BackupError> {
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
) -> Result<Option<(BTreeMap<String, pg::TableData>, Vec<FileEntry>)>, BackupError> {
    let mut work: Vec<(String, String)> = Vec::new();
    for (id, entry) in pg::list_table_data_ids(tools, archive)? {
        match names.get(&entry) {
            Some(table) => work.push((format!("{id}.dat"), table.clone())),
            None => return Ok(None),
        }
    }
    let mut present: Vec<String> = fs::read_dir(archive)
        .map_err(|e| BackupError::Io(format!("cannot list {}: {e}", archive.display())))?
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
    let results: Vec<Result<Vec<(FileEntry, String, pg::TableData)>, BackupError>> =
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
                            let (bytes, sha256, data) = pg::read_data_file(&archive.join(&file))
                                .map_err(|e| BackupError::Corrupt(e.to_string()))?;
                            done.push((
                                FileEntry {
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
                        Err(BackupError::Io("reading the archive stopped".to_owned()))
                    })
                })
                .collect()
        });
    let mut tables = BTreeMap::new();
    let mut files = vec![hash_file(&archive.join("toc.dat"), "toc.dat".to_owned())?];
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

/// `identity_service_backup_<stamp>` with the format's extension, with `_2`, `_3`... when a
/// backup of the same second exists (a safety backup right after another one).
pub(crate) fn free_default_name(dir: &Path, stamp: &str, extension: &str) -> PathBuf {
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("_{n}")
        };
        let path = dir.join(format!(
            "identity_service_backup_{stamp}{suffix}{extension}"
        ));
        if !path.exists() && !manifest_path(&path).exists() {
            return path;
        }
        n += 1;
    }
}

/// How thoroughly [`verify`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every file's size and SHA-256 against the manifest, and the archive's table of contents
    /// read by `pg_restore --list`, which must hold a data entry for every table of the
    /// manifest. The backup decoded these exact bytes in the pass that wrote them and the
    /// manifest pins them by SHA-256, so this finds any change to the file: a truncation, an
    /// overwritten byte, a missing file. A plain script is always read whole (it is only text).
    Fast,
    /// [`Check::Fast`], then a full decode of the archive: its row counts and data digests
    /// must equal the manifest's. This also refuses a corrupt archive whose manifest was
    /// rewritten to match it, or a manifest whose row counts were edited.
    Full,
}

/// Checks a backup against its manifest, as thoroughly as `check` says.
pub fn verify(path: &Path, tools: &ClientTools, check: Check) -> Result<Manifest, BackupError> {
    let (manifest, format) = verify_files(path, tools)?;
    if check == Check::Full || format == Format::Plain {
        let decoded = pg::read_archive(tools, path, format);
        check_decoded(&manifest, decoded)?;
    }
    Ok(manifest)
}

/// The fast check: the manifest, every file's size and SHA-256, and the table of contents.
fn verify_files(path: &Path, tools: &ClientTools) -> Result<(Manifest, Format), BackupError> {
    let manifest = read_manifest(path)?;
    let format = Format::parse(&manifest.format).ok_or_else(|| {
        BackupError::Corrupt(format!(
            "unknown format {:?} in the manifest",
            manifest.format
        ))
    })?;
    check_files(path, &manifest)?;
    if format != Format::Plain {
        let entries = pg::list_table_data(tools, path).map_err(|e| {
            BackupError::Corrupt(format!("its table of contents cannot be read ({e})"))
        })?;
        let missing: Vec<&str> = manifest
            .tables
            .keys()
            .filter(|t| {
                let prefix = toc_prefix(t);
                !entries.iter().any(|e| e.starts_with(&prefix))
            })
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || entries.len() != manifest.tables.len() {
            return Err(BackupError::Corrupt(format!(
                "the archive's table of contents holds data for {} table(s), the manifest lists {}{}",
                entries.len(),
                manifest.tables.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(" (no data entry for {})", missing.join(", "))
                }
            )));
        }
    }
    Ok((manifest, format))
}

/// Every file of the archive at `path` against the manifest: the same names, sizes and SHA-256.
/// A one-file archive may be renamed or copied: only its bytes matter.
pub(crate) fn check_files(path: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let actual = hash_files(path)?;
    let mut expected = manifest.files.clone();
    if let ([file], [listed]) = (actual.as_slice(), expected.as_mut_slice()) {
        listed.path.clone_from(&file.path);
    }
    if actual == expected {
        return Ok(());
    }
    let listed: BTreeMap<&str, &FileEntry> =
        expected.iter().map(|f| (f.path.as_str(), f)).collect();
    let found: BTreeMap<&str, &FileEntry> = actual.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut problems = Vec::new();
    for (name, want) in &listed {
        match found.get(name) {
            None => problems.push(format!("{name} is missing")),
            Some(got) if got.bytes != want.bytes => problems.push(format!(
                "{name} has {} bytes, the manifest says {}",
                got.bytes, want.bytes
            )),
            Some(got) if got.sha256 != want.sha256 => {
                problems.push(format!("{name} does not match its SHA-256"))
            }
            Some(_) => {}
        }
    }
    for name in found.keys().filter(|n| !listed.contains_key(*n)) {
        problems.push(format!("{name} is not in the manifest"));
    }
    Err(BackupError::Corrupt(problems.join("; ")))
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

/// Compares a full decode with the manifest: row counts and data digests, table by table.
fn check_decoded(
    manifest: &Manifest,
    decoded: Result<BTreeMap<String, pg::TableData>, DriverError>,
) -> Result<(), BackupError> {
    let decoded = decoded
        .map_err(|e| BackupError::Corrupt(format!("the archive cannot be read whole ({e})")))?;
    let (rows, digests) = split(decoded);
    check_content(manifest, &rows, &digests).map_err(BackupError::Corrupt)
}

/// Whether row counts and data digests, table by table, are exactly the manifest's.
pub(crate) fn check_content(
    manifest: &Manifest,
    rows: &BTreeMap<String, u64>,
    digests: &BTreeMap<String, String>,
) -> Result<(), String> {
    compare_counts(&manifest.tables, rows)?;
    let altered: Vec<&str> = manifest
        .table_sha256
        .iter()
        .filter(|(table, sha)| digests.get(*table) != Some(*sha))
        .map(|(table, _)| table.as_str())
        .collect();
    if altered.is_empty() && digests.len() == manifest.table_sha256.len() {
        return Ok(());
    }
    Err(format!(
        "the data of {} differs from what was backed up",
        if altered.is_empty() {
            "some table".to_owned()
        } else {
            altered.join(", ")
        }
    ))
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Replace a target that already holds tables (`--yes`).
    pub replace: bool,
    /// Parallel sessions of `pg_restore` into the scratch database.
    pub jobs: u32,
    /// Restore in one transaction into the target itself instead of swapping databases.
    pub in_place: bool,
    /// How long the swap waits for other sessions to leave the target before it gives up.
    pub session_wait: Duration,
}

/// How a restore replaced the target's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Restored with parallel sessions into a scratch database, checked, and renamed into
    /// place in one transaction.
    Swap,
    /// Restored in one transaction into the target itself, for the reason given.
    InPlace(String),
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// How the target was replaced.
    pub method: Method,
    /// The previous database, renamed and kept, when the target held tables (swap only).
    pub previous: Option<String>,
    /// The safety backup taken of the target's previous content (in place only).
    pub safety_backup: Option<Backup>,
    /// The revision(s) the database is at now.
    pub revisions: Vec<String>,
    /// Rows now in the database, per table.
    pub tables: BTreeMap<String, u64>,
}

/// A verification failure, saying that the restore touched nothing.
pub fn nothing_restored(e: BackupError) -> BackupError {
    match e {
        BackupError::Corrupt(m) => BackupError::Corrupt(format!("{m}; nothing was restored")),
        other => other,
    }
}

/// Restores a backup into the database of `settings`, atomically: it all lands or the target
/// stays exactly as it was.
///
/// The checksums are checked first, and nothing is touched if they fail. A database that holds
/// tables (or other relations) is refused unless `options.replace` is set.
///
/// By default the archive is restored with `options.jobs` sessions into a new scratch database
/// `<target>__restore_<stamp>` while a full decode of the archive runs beside it; both must
/// match the manifest (row counts, data digests), the scratch database gets the target's owner,
/// settings, grants, connection limit and comment, and then one transaction renames the target
/// to `<target>__before_<stamp>` and the scratch database to the target. The previous database
/// is dropped if it held no relation and kept otherwise (see [`Restored::previous`]). Any
/// failure before the swap drops the scratch database.
///
/// When the role cannot do that (no CREATEDB, or not the target's owner), or with
/// `options.in_place`, it restores in place in one transaction after a full verify, first
/// taking a safety backup (with `safety`) of a target that holds tables.
pub fn restore(
    settings: &ConnectionSettings,
    path: &Path,
    options: &RestoreOptions,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let mut client = connect(settings)?;
    let (_, major) = server_version(&mut client)?;
    let tools = pg::find_tools(major)?;
    let (manifest, format) = verify_files(path, &tools).map_err(nothing_restored)?;
    let existing = relation_count(&mut client)?;
    if existing > 0 && !options.replace {
        return Err(BackupError::NotEmpty { tables: existing });
    }
    let in_place = if options.in_place {
        Some("--in-place was given".to_owned())
    } else {
        swap_blocker(&mut client)?
    };
    if let Some(reason) = in_place {
        if !options.in_place {
            // Said on stdout as the restore's method; a log line would double an error line.
            log::debug!("{reason}: restoring in place, in one transaction (slower)");
        }
        return restore_in_place(
            settings,
            &mut client,
            &tools,
            path,
            format,
            existing,
            reason,
            safety,
            progress,
        );
    }
    // A client that has just disconnected stays listed while its backend exits: a short grace
    // keeps that from reading as a session in the way.
    let grace = Instant::now() + options.session_wait.min(Duration::from_secs(3));
    let mut others = sessions(&mut client, &settings.dbname)?;
    while !others.is_empty() && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(100));
        others = sessions(&mut client, &settings.dbname)?;
    }
    if !others.is_empty() {
        return Err(BackupError::SessionsConnected {
            database: settings.dbname.clone(),
            sessions: others,
        });
    }
    // The target is renamed later, which needs every session gone, this one included.
    drop(client);
    restore_by_swap(
        settings, &tools, path, format, manifest, existing, options, progress,
    )
}

/// Why this role cannot restore by swapping databases, if it cannot.
fn swap_blocker(client: &mut Client) -> Result<Option<String>, BackupError> {
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
fn relation_count(client: &mut Client) -> Result<usize, BackupError> {
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
fn sessions(client: &mut Client, database: &str) -> Result<Vec<String>, BackupError> {
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

/// The old way, for roles that cannot create or rename databases: a full verify, a safety
/// backup of a target that holds tables, then `pg_restore --single-transaction`.
#[allow(clippy::too_many_arguments)]
fn restore_in_place(
    settings: &ConnectionSettings,
    client: &mut Client,
    tools: &ClientTools,
    path: &Path,
    format: Format,
    existing: usize,
    reason: String,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    // The decode must come first here: once the transaction commits there is no going back.
    let manifest = verify(path, tools, Check::Full).map_err(nothing_restored)?;
    let mut safety_backup = None;
    if existing > 0 {
        log::debug!("taking a safety backup of the {existing} relation(s) in the target first");
        safety_backup = Some(backup(settings, safety, progress)?);
    }
    let started = Instant::now();
    pg::restore(
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
        .filter(|(t, _)| manifest.tables.contains_key(*t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    compare_counts(&manifest.tables, &restored).map_err(BackupError::RestoredCountsDiffer)?;
    Ok(Restored {
        revisions: revisions(client)?,
        manifest,
        method: Method::InPlace(reason),
        previous: None,
        safety_backup,
        tables,
    })
}

/// A session on the server's maintenance database (`postgres`, else `template1`), from which
/// databases are created, renamed and dropped.
fn connect_maintenance(settings: &ConnectionSettings) -> Result<Client, BackupError> {
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
    Err(last.unwrap_or_else(|| BackupError::Io("no maintenance database".to_owned())))
}

/// `<target><infix><stamp>`, shortened to PostgreSQL's 63-byte names, with `_2`, `_3`... if
/// taken.
fn free_database_name(
    admin: &mut Client,
    target: &str,
    infix: &str,
    stamp: &str,
) -> Result<String, BackupError> {
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
    Err(BackupError::Io(format!(
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
) -> Result<DatabaseProperties, BackupError> {
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
fn database_grants(admin: &mut Client, database: &str) -> Result<Vec<String>, BackupError> {
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
) -> Result<Vec<(String, Vec<String>)>, BackupError> {
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
) -> Result<(), BackupError> {
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
            BackupError::Io(format!(
                "cannot give the restored database the settings and grants of {target}: {}",
                pg_error(e)
            ))
        })?;
    }
    let same_grants = !acl_set || database_grants(admin, scratch)? == grants;
    if !same_grants || database_settings(admin, scratch)? != settings {
        return Err(BackupError::Io(format!(
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
    manifest: Manifest,
    existing: usize,
    options: &RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let target = settings.dbname.clone();
    let mut admin = connect_maintenance(settings)?;
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
            BackupError::Io(format!(
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
        &manifest,
        &props,
        &stamp,
        options,
        progress,
    );
    let (tables, revisions, before) = match swapped {
        Ok(done) => done,
        Err(e) => {
            // Leave the target exactly as it was: the scratch database goes, whatever it holds.
            if let Err(d) = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&scratch)
            )) {
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
    Ok(Restored {
        manifest,
        method: Method::Swap,
        previous,
        safety_backup: None,
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
    manifest: &Manifest,
    props: &DatabaseProperties,
    stamp: &str,
    options: &RestoreOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Swapped, BackupError> {
    let scratch = scratch_settings.dbname.as_str();
    let started = Instant::now();
    // The full decode runs beside the restore, on the other core: it checks the data digests
    // of the archive (which the checksum alone cannot, behind a rewritten manifest) without
    // adding its time to the restore's.
    let (restored, decoded) = std::thread::scope(|scope| {
        let decoding = scope.spawn(|| pg::read_archive(tools, path, format));
        let restored = pg::restore_parallel(
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
    check_decoded(manifest, decoded).map_err(nothing_restored)?;
    restored?;
    let mut client = connect(scratch_settings)?;
    let tables = table_counts(&mut client)?;
    compare_counts(&manifest.tables, &tables).map_err(BackupError::RestoredCountsDiffer)?;
    let revisions = revisions(&mut client)?;
    drop(client);
    carry_over(admin, target, scratch, props)?;
    let before = free_database_name(admin, target, "__before_", stamp)?;
    swap(admin, target, scratch, &before, options.session_wait)?;
    Ok((tables, revisions, before))
}

/// Renames `target` to `before` and `scratch` to `target` in one transaction, once no session
/// is connected to either (renaming needs that), waiting up to `wait` for them to leave.
fn swap(
    admin: &mut Client,
    target: &str,
    scratch: &str,
    before: &str,
    wait: Duration,
) -> Result<(), BackupError> {
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
                        return Err(BackupError::SessionsConnected {
                            database: target.to_owned(),
                            sessions: vec![pg_error(e).to_string()],
                        });
                    }
                }
                Err(e) => return Err(pg_error(e)),
            }
        } else if Instant::now() >= deadline {
            return Err(BackupError::SessionsConnected {
                database: target.to_owned(),
                sessions: others,
            });
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

/// Reads the manifest beside an archive.
pub fn read_manifest(path: &Path) -> Result<Manifest, BackupError> {
    if !path.exists() {
        return Err(BackupError::Io(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let mpath = manifest_path(path);
    let text = match fs::read_to_string(&mpath) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(path.to_owned()))
        }
        Err(e) => {
            return Err(BackupError::Io(format!(
                "cannot read {}: {e}",
                mpath.display()
            )))
        }
    };
    Manifest::from_json(&text).map_err(|e| {
        BackupError::Corrupt(format!(
            "its manifest {} is not valid ({e})",
            mpath.display()
        ))
    })
}

/// Row counts and data digests of a decoded archive, as two maps.
fn split(
    decoded: BTreeMap<String, pg::TableData>,
) -> (BTreeMap<String, u64>, BTreeMap<String, String>) {
    let rows = decoded.iter().map(|(t, d)| (t.clone(), d.rows)).collect();
    let digests = decoded.into_iter().map(|(t, d)| (t, d.sha256)).collect();
    (rows, digests)
}

fn compare_counts(
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    for (table, want) in expected {
        match found.get(table) {
            None => problems.push(format!("{table} is missing")),
            Some(got) if got != want => {
                problems.push(format!("{table} has {got} rows, expected {want}"))
            }
            Some(_) => {}
        }
    }
    for table in found.keys().filter(|t| !expected.contains_key(*t)) {
        problems.push(format!("{table} is not in the manifest"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// SHA-256 and size of every file of an archive (the file itself, or a directory's files),
/// with paths relative to the archive.
pub(crate) fn hash_files(archive: &Path) -> Result<Vec<FileEntry>, BackupError> {
    let mut files = Vec::new();
    if archive.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(archive)
            .map_err(|e| BackupError::Io(format!("cannot list {}: {e}", archive.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let name = file_name(&p).to_string_lossy().into_owned();
            files.push(hash_file(&p, name)?);
        }
    } else {
        files.push(hash_file(
            archive,
            file_name(archive).to_string_lossy().into_owned(),
        )?);
    }
    Ok(files)
}

fn hash_file(path: &Path, name: String) -> Result<FileEntry, BackupError> {
    let mut file = File::open(path)
        .map_err(|e| BackupError::Io(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| BackupError::Io(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry {
        path: name,
        bytes,
        sha256: hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    })
}

fn file_name(path: &Path) -> &std::ffi::OsStr {
    path.file_name().unwrap_or(path.as_os_str())
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

fn rename(from: &Path, to: &Path) -> Result<(), BackupError> {
    fs::rename(from, to)
        .map_err(|e| BackupError::Io(format!("cannot move the backup to {}: {e}", to.display())))
}

/// Creates a file readable by its owner only, whatever the umask.
fn create_private(path: &Path) -> Result<File, BackupError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .map_err(|e| BackupError::Io(format!("cannot create {}: {e}", path.display())))?;
    set_mode(path, 0o600)?;
    Ok(file)
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), BackupError> {
    let mut file = create_private(path)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| BackupError::Io(format!("cannot write {}: {e}", path.display())))
}

/// Makes what pg_dump wrote private: files 0600, directories 0700.
fn restrict(path: &Path) -> Result<(), BackupError> {
    if path.is_dir() {
        set_mode(path, 0o700)?;
        for entry in fs::read_dir(path)
            .map_err(|e| BackupError::Io(format!("cannot list {}: {e}", path.display())))?
        {
            let entry = entry.map_err(|e| BackupError::Io(e.to_string()))?;
            restrict(&entry.path())?;
        }
        Ok(())
    } else {
        set_mode(path, 0o600)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| BackupError::Io(format!("cannot restrict {}: {e}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// A private directory beside the destination, removed with everything in it unless finished.
struct Staging {
    dir: PathBuf,
    done: bool,
}

impl Staging {
    fn create(destination: &Path) -> Result<Staging, BackupError> {
        let parent = match destination.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let dir = parent.join(format!(
            ".{}.partial-{}",
            file_name(destination).to_string_lossy(),
            std::process::id()
        ));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(|e| {
            BackupError::Io(format!(
                "cannot write in the backup directory {}: {e}",
                parent.display()
            ))
        })?;
        set_mode(&dir, 0o700)?;
        Ok(Staging { dir, done: false })
    }

    fn finish(mut self) {
        self.done = true;
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
