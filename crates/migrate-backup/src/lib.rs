//! Backups that operators can trust, and restores that never lose a row: the policy, over the
//! backup half of the driver contract ([`BackupDriver`], [`ArchiveReader`]). Nothing here names
//! a database; the drivers hold the SQL, the sessions and the client tools.
//!
//! - A backup is written in a private (0700) staging directory and renamed into place only when
//!   it is complete and verified; its files are 0600 whatever the umask. A failure, a full disk or
//!   a killed process leaves nothing that looks like a backup (the next backup removes what a
//!   killed one left: see `stale`).
//! - Its manifest records the SHA-256 and size of every file, the server and client tool
//!   versions, the database's revision(s), and the row count of every table, counted in the same
//!   snapshot that the archive holds.
//! - The driver decodes every byte it writes in the same pass: the per-table row counts and data
//!   digests of the manifest come from the archive itself, and must equal the database's counts.
//! - `verify` checks every file's SHA-256 and reads the archive's table of contents where it has
//!   one (fast); [`Check::Full`], or an archive without a table of contents, also decodes the
//!   whole archive and compares its row counts and data digests, which catches corruption even
//!   behind a manifest rewritten to match it.
//! - `restore` takes a verified archive, refuses a target that holds anything unless told to
//!   replace it, decodes in full first (and takes a safety backup) where the driver restores in
//!   place, and compares what the database holds afterwards with the manifest.

mod manifest;
mod stale;

pub use manifest::{FileEntry, Manifest};
pub use migrate_core::backup::{
    ArchiveReader, BackupDriver, Method, Progress, RestoreRequest, SnapshotRequest,
};

use migrate_core::backup::{check_content, compare_counts, Expected, RestoreError};
use migrate_core::driver::DriverError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a backup, a verification or a restore failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The database or a client tool failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The request is not one this database's backups can do (bad input).
    #[error("{0}")]
    Refused(String),
    /// The destination already exists; backups are never overwritten.
    #[error("{} already exists: backups are never overwritten; choose another --output", .0.display())]
    Exists(PathBuf),
    /// The archive has no manifest beside it.
    #[error(
        "{} has no manifest ({}): it is not a complete backup made by identity-migrate",
        .0.display(),
        manifest_path(.0).display()
    )]
    NoManifest(PathBuf),
    /// The archive does not match its manifest, or cannot be read whole.
    #[error("the backup is not intact: {0}")]
    Corrupt(String),
    /// The target database holds tables (or other relations) and `--yes` was not given.
    #[error("the target database already holds {tables} table(s) or other relation(s): pass --yes to replace them (the previous database is kept under another name)")]
    NotEmpty {
        /// How many relations it holds.
        tables: usize,
    },
    /// Other sessions are connected to the target, and the swap that replaces it needs none.
    #[error(
        "{} other session(s) are connected to {database} ({}): the restore replaces the database by renaming, which needs them closed; stop them and run it again, or pass --in-place (one transaction, slower)",
        sessions.len(),
        sessions.join(", ")
    )]
    SessionsConnected {
        /// The target database.
        database: String,
        /// The sessions, as `pid (application, user)`.
        sessions: Vec<String>,
    },
    /// The restored database does not hold what the manifest says.
    #[error("the restore finished but the database does not hold what the backup does: {0}")]
    RestoredCountsDiffer(String),
}

impl From<RestoreError> for BackupError {
    fn from(e: RestoreError) -> Self {
        match e {
            RestoreError::Driver(e) => BackupError::Driver(e),
            RestoreError::Corrupt(m) => BackupError::Corrupt(m),
            RestoreError::Differs(m) => BackupError::RestoredCountsDiffer(m),
            RestoreError::SessionsConnected { database, sessions } => {
                BackupError::SessionsConnected { database, sessions }
            }
            // The enum may grow: its message still says what happened.
            #[allow(unreachable_patterns)]
            other => BackupError::Io(format!("{other:?}")),
        }
    }
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
    /// What the driver is asked to write: format, jobs, compression.
    pub snapshot: SnapshotRequest,
    /// The tool's version, for the manifest.
    pub tool_version: String,
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Backup {
    /// The archive (a file, or a directory for the directory format).
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The compression level, where the format compresses.
    pub compression: Option<u32>,
    /// How the archive was checked as it was written.
    pub checked: String,
}

impl Backup {
    /// Rows in the backup, all tables together.
    pub fn rows(&self) -> u64 {
        self.manifest.tables.values().sum()
    }

    /// The archive's size in bytes, all files together.
    pub fn bytes(&self) -> u64 {
        self.manifest.files.iter().map(|f| f.bytes).sum()
    }
}

/// Takes a backup: checks the request and the destination before any work, snapshots the
/// database into a private staging directory, checks what the archive holds against what the
/// database counted, and only then puts the archive and its manifest in place.
pub fn backup(
    driver: &mut dyn BackupDriver,
    request: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Backup, BackupError> {
    let format = driver
        .archive_format(&request.snapshot)
        .map_err(BackupError::Refused)?;
    let path = match &request.output {
        Some(p) => p.clone(),
        None => free_default_name(&request.dir, &driver.stamp()?, format.extension),
    };
    for existing in [&path, &manifest_path(&path)] {
        if existing.exists() {
            return Err(BackupError::Exists(existing.clone()));
        }
    }
    let staging = Staging::create(&path)?;
    let staged = staging.dir.join(file_name(&path));
    let snapshot = driver.snapshot(&request.snapshot, &staged, progress)?;
    restrict(&staged)?;
    let files = match snapshot.files {
        Some(files) => files.into_iter().map(FileEntry::from).collect(),
        None => hash_files(&staged)?,
    };
    let archived_rows = snapshot
        .archived
        .iter()
        .map(|(t, d)| (t.clone(), d.rows))
        .collect();
    compare_counts(&snapshot.counted, &archived_rows).map_err(BackupError::Corrupt)?;
    let manifest = Manifest {
        format_version: 1,
        tool: "identity-migrate".to_owned(),
        tool_version: request.tool_version.clone(),
        created_at: snapshot.created_at,
        database: driver.redacted(),
        server_version: snapshot.server_version,
        pg_dump_version: snapshot.tool_version,
        format: snapshot.format.name,
        revisions: snapshot.revisions,
        tables: snapshot.counted,
        table_sha256: snapshot
            .archived
            .into_iter()
            .map(|(t, d)| (t, d.sha256))
            .collect(),
        files,
    };
    let staged_manifest = manifest_path(&staged);
    write_private(&staged_manifest, &manifest.to_json())?;
    // The archive first, then its manifest: an archive without a manifest is never trusted.
    rename(&staged, &path)?;
    rename(&staged_manifest, &manifest_path(&path))?;
    staging.finish();
    Ok(Backup {
        path,
        manifest,
        compression: snapshot.format.compression,
        checked: snapshot.checked,
    })
}

/// `identity_service_backup_<stamp>` with the format's extension, with `_2`, `_3`... when a
/// backup of the same second exists (a safety backup right after another one).
fn free_default_name(dir: &Path, stamp: &str, extension: &str) -> PathBuf {
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
    /// Every file's size and SHA-256 against the manifest, and the archive's table of contents,
    /// which must hold a data entry for every table of the manifest. The backup decoded these
    /// exact bytes in the pass that wrote them and the manifest pins them by SHA-256, so this
    /// finds any change to the file: a truncation, an overwritten byte, a missing file. An
    /// archive without a table of contents (a plain script, a SQLite file) is always read whole.
    Fast,
    /// [`Check::Fast`], then a full decode of the archive: its row counts and data digests
    /// must equal the manifest's. This also refuses a corrupt archive whose manifest was
    /// rewritten to match it, or a manifest whose row counts were edited.
    Full,
}

/// A backup that passed [`verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The archive.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether the whole archive was decoded and matched the manifest's counts and digests.
    pub decoded: bool,
}

impl Verified {
    /// What the database restored from it must hold.
    fn expected(&self) -> Expected {
        Expected {
            tables: self.manifest.tables.clone(),
            table_sha256: self.manifest.table_sha256.clone(),
        }
    }
}

/// Checks a backup against its manifest, as thoroughly as `check` says, reading the archive
/// with `reader`.
pub fn verify(
    path: &Path,
    reader: &dyn ArchiveReader,
    check: Check,
) -> Result<Verified, BackupError> {
    let manifest = read_manifest(path)?;
    check_files(path, &manifest)?;
    let toc = reader
        .table_of_contents(path, &manifest.format)
        .map_err(|e| BackupError::Corrupt(format!("its table of contents cannot be read ({e})")))?;
    if let Some(entries) = &toc {
        let missing: Vec<&str> = manifest
            .tables
            .keys()
            .filter(|t| !reader.lists(entries, t))
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
    let mut verified = Verified {
        path: path.to_owned(),
        manifest,
        decoded: false,
    };
    if check == Check::Full || toc.is_none() {
        decode(&mut verified, reader)?;
    }
    Ok(verified)
}

/// Decodes the whole archive and compares it with the manifest: row counts and data digests,
/// table by table.
fn decode(verified: &mut Verified, reader: &dyn ArchiveReader) -> Result<(), BackupError> {
    let decoded = reader
        .read(&verified.path, &verified.manifest.format)
        .map_err(|e| BackupError::Corrupt(format!("the archive cannot be read whole ({e})")))?;
    check_content(&verified.expected(), &decoded).map_err(BackupError::Corrupt)?;
    verified.decoded = true;
    Ok(())
}

/// Every file of the archive at `path` against the manifest: the same names, sizes and SHA-256.
/// A one-file archive may be renamed or copied: only its bytes matter.
fn check_files(path: &Path, manifest: &Manifest) -> Result<(), BackupError> {
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

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Replace a target that already holds tables (`--yes`).
    pub replace: bool,
    /// How the driver restores: in place or not, parallel sessions, how long to wait for
    /// sessions to leave.
    pub request: RestoreRequest,
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

/// Restores a verified backup into the database of `driver`, atomically: it all lands or the
/// target stays exactly as it was.
///
/// A database that holds tables (or other relations) is refused unless `options.replace` is
/// set. Where the driver restores in place (in one transaction), the archive is first decoded in
/// full (once that transaction commits there is no going back) and a safety backup (with
/// `safety`) is taken of a target that holds anything; where it swaps a scratch database in, it
/// decodes beside the restore and checks before the swap. Either way the result is compared
/// with the manifest.
pub fn restore(
    driver: &mut dyn BackupDriver,
    verified: &Verified,
    options: &RestoreOptions,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let existing = driver.relation_count()?;
    if existing > 0 && !options.replace {
        return Err(BackupError::NotEmpty { tables: existing });
    }
    let method = driver.restore_method(&options.request)?;
    let mut safety_backup = None;
    if let Method::InPlace(_) = method {
        if !verified.decoded {
            let reader = driver.archive_reader()?;
            decode(&mut verified.clone(), reader.as_ref()).map_err(nothing_restored)?;
        }
        if existing > 0 {
            log::debug!("taking a safety backup of the {existing} relation(s) in the target first");
            safety_backup = Some(backup(driver, safety, progress)?);
        }
    }
    let outcome = driver.restore(
        &verified.path,
        &verified.manifest.format,
        &method,
        &options.request,
        &verified.expected(),
        progress,
    )?;
    Ok(Restored {
        manifest: verified.manifest.clone(),
        method: outcome.method,
        previous: outcome.previous,
        safety_backup,
        revisions: outcome.revisions,
        tables: outcome.tables,
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

/// SHA-256 and size of every file of an archive (the file itself, or a directory's files),
/// with paths relative to the archive.
fn hash_files(archive: &Path) -> Result<Vec<FileEntry>, BackupError> {
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
        stale::remove_partials(&parent);
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
        let staging = Staging { dir, done: false };
        stale::write_owner(&staging.dir)?;
        Ok(staging)
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
/// Verifies the archive at `path` with the driver's own reader (the fast check) and restores
/// it: [`verify`] then [`restore`], for a caller that has no other reader at hand.
pub fn verify_and_restore(
    driver: &mut dyn BackupDriver,
    path: &Path,
    options: &RestoreOptions,
    safety: &BackupRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<Restored, BackupError> {
    let reader = driver.archive_reader()?;
    let verified = verify(path, reader.as_ref(), Check::Fast).map_err(nothing_restored)?;
    restore(driver, &verified, options, safety, progress)
}
