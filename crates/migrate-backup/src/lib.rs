//! Backups that operators can trust, and restores that never lose a row.
//!
//! - A backup is written in a private (0700) staging directory and renamed into place only when
//!   it is complete and verified; its files are 0600 whatever the umask. A failure, a full disk or
//!   a killed process leaves nothing that looks like a backup.
//! - Its manifest records the SHA-256 and size of every file, the server and `pg_dump` versions,
//!   the database's revision(s), and the row count of every table, counted in the same snapshot
//!   that `pg_dump` reads.
//! - `verify` checks the checksums and decodes the whole archive, comparing row counts: a
//!   truncated or altered archive is refused.
//! - `restore` verifies first and touches nothing if that fails, then restores in one
//!   transaction with every error fatal, and checks the restored row counts.

mod manifest;
pub mod sqlite;

pub use manifest::{FileEntry, Manifest};
pub use migrate_postgres::backup::Format;

use migrate_core::driver::DriverError;
use migrate_postgres::backup::{self as pg, ClientTools};
use migrate_postgres::url::ConnectionSettings;
use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
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
    /// The target database holds tables and `--yes` was not given.
    NotEmpty {
        /// How many tables it holds.
        tables: usize,
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
                "the target database already holds {tables} table(s): pass --yes to replace them (a safety backup of them is taken first)"
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
    /// The tool's version, for the manifest.
    pub tool_version: String,
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
    let mut config = settings.to_postgres_config();
    config.application_name("identity-migrate backup");
    config.connect(NoTls).map_err(|e| {
        BackupError::Driver(DriverError::Unreachable(format!(
            "{}: {e}",
            settings.redacted()
        )))
    })
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
    let expected = table_counts(&mut tx)?;
    let revisions = revisions(&mut tx)?;

    let started = Instant::now();
    let staged = staging.dir.join(file_name(&path));
    let archived = match request.format {
        Format::Custom => {
            let file = create_private(&staged)?;
            let mut sink = io::BufWriter::with_capacity(1 << 20, file);
            let counts =
                pg::dump_streaming(&tools, settings, Some(&snapshot), &mut sink, &mut |bytes| {
                    progress(Progress {
                        bytes,
                        elapsed: started.elapsed(),
                    })
                })?;
            let file = sink
                .into_inner()
                .map_err(|e| BackupError::Io(format!("writing the backup: {}", e.error())))?;
            file.sync_all()
                .map_err(|e| BackupError::Io(format!("writing the backup: {e}")))?;
            counts
        }
        Format::Directory | Format::Plain => {
            pg::dump(
                &tools,
                settings,
                request.format,
                request.jobs,
                Some(&snapshot),
                &staged,
                &mut |elapsed| {
                    progress(Progress {
                        bytes: size_of(&staged),
                        elapsed,
                    })
                },
            )?;
            restrict(&staged)?;
            pg::read_archive(&tools, &staged, request.format)?
        }
    };
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
        files: hash_files(&staged)?,
    };
    let staged_manifest = manifest_path(&staged);
    write_private(&staged_manifest, &manifest.to_json())?;
    // The archive first, then its manifest: an archive without a manifest is never trusted.
    rename(&staged, &path)?;
    rename(&staged_manifest, &manifest_path(&path))?;
    staging.finish();
    Ok(Backup { path, manifest })
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

/// Checks a backup: its manifest, every file's size and SHA-256, and a full decode of the
/// archive whose row counts must equal the manifest's.
pub fn verify(path: &Path, tools: &ClientTools) -> Result<Manifest, BackupError> {
    let manifest = read_manifest(path)?;
    let format = Format::parse(&manifest.format).ok_or_else(|| {
        BackupError::Corrupt(format!(
            "unknown format {:?} in the manifest",
            manifest.format
        ))
    })?;
    let actual = hash_files(path)?;
    let mut expected = manifest.files.clone();
    if let ([file], [listed]) = (actual.as_slice(), expected.as_mut_slice()) {
        // A one-file archive may be renamed or copied: only its bytes matter.
        listed.path.clone_from(&file.path);
    }
    if actual != expected {
        let listed: BTreeMap<&str, &FileEntry> =
            expected.iter().map(|f| (f.path.as_str(), f)).collect();
        let found: BTreeMap<&str, &FileEntry> =
            actual.iter().map(|f| (f.path.as_str(), f)).collect();
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
        return Err(BackupError::Corrupt(problems.join("; ")));
    }
    let decoded = pg::read_archive(tools, path, format)
        .map_err(|e| BackupError::Corrupt(format!("the archive cannot be read whole ({e})")))?;
    let (rows, digests) = split(decoded);
    compare_counts(&manifest.tables, &rows).map_err(BackupError::Corrupt)?;
    let altered: Vec<&String> = manifest
        .table_sha256
        .iter()
        .filter(|(table, sha)| digests.get(*table) != Some(*sha))
        .map(|(table, _)| table)
        .collect();
    if !altered.is_empty() || digests.len() != manifest.table_sha256.len() {
        return Err(BackupError::Corrupt(format!(
            "the data of {} differs from what was backed up",
            if altered.is_empty() {
                "some table".to_owned()
            } else {
                altered
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    Ok(manifest)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// The safety backup taken of the target's previous content, if any.
    pub safety_backup: Option<Backup>,
    /// The revision(s) the database is at now.
    pub revisions: Vec<String>,
    /// Rows now in the database, per table.
    pub tables: BTreeMap<String, u64>,
}

/// Restores a verified backup into the database of `settings`, atomically.
///
/// A database that holds tables is refused unless `replace` is set; then a safety backup of it
/// is taken first (with `safety`), and the restore drops and recreates the archive's objects in
/// the same transaction.
pub fn restore(
    settings: &ConnectionSettings,
    path: &Path,
    replace: bool,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let mut client = connect(settings)?;
    let (_, major) = server_version(&mut client)?;
    let tools = pg::find_tools(major)?;
    let manifest = verify(path, &tools).map_err(|e| match e {
        BackupError::Corrupt(m) => BackupError::Corrupt(format!("{m}; nothing was restored")),
        other => other,
    })?;
    let format = Format::parse(&manifest.format)
        .ok_or_else(|| BackupError::Corrupt("unknown format".to_owned()))?;
    let existing = table_counts(&mut client)?.len();
    let mut safety_backup = None;
    if existing > 0 {
        if !replace {
            return Err(BackupError::NotEmpty { tables: existing });
        }
        log::info!("taking a safety backup of the {existing} table(s) in the target first");
        safety_backup = Some(backup(settings, safety, progress)?);
    }
    let started = Instant::now();
    pg::restore(
        &tools,
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
    let tables = table_counts(&mut client)?;
    let restored: BTreeMap<String, u64> = tables
        .iter()
        .filter(|(t, _)| manifest.tables.contains_key(*t))
        .map(|(t, n)| (t.clone(), *n))
        .collect();
    compare_counts(&manifest.tables, &restored).map_err(BackupError::RestoredCountsDiffer)?;
    Ok(Restored {
        revisions: revisions(&mut client)?,
        manifest,
        safety_backup,
        tables,
    })
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

pub(crate) fn compare_counts(
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
