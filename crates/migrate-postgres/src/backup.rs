//! Backup and restore through PostgreSQL's own tools: `pg_dump`, `pg_restore` and `psql`.
//!
//! The connection reaches the child processes through libpq's environment variables, never
//! their arguments, so no password shows in `/proc/<pid>/cmdline` or `ps`.

use crate::url::{ConnectionSettings, Host};
use migrate_core::driver::DriverError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// pg_dump's archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One compressed file, restorable table by table (`pg_dump -Fc`).
    Custom,
    /// One file per table in a directory; dumps tables in parallel (`pg_dump -Fd -j N`).
    Directory,
    /// A plain SQL script (`pg_dump -Fp`).
    Plain,
}

impl Format {
    /// The name used on the command line and in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Plain => "plain",
        }
    }

    /// The file name extension (empty for a directory).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Custom => ".dump",
            Format::Directory => "",
            Format::Plain => ".sql",
        }
    }

    /// Parses `custom`, `directory` or `plain`.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "custom" => Some(Format::Custom),
            "directory" => Some(Format::Directory),
            "plain" => Some(Format::Plain),
            _ => None,
        }
    }
}

/// The client tools, of the server's major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTools {
    /// `pg_dump`.
    pub pg_dump: PathBuf,
    /// `pg_restore`.
    pub pg_restore: PathBuf,
    /// `psql`.
    pub psql: PathBuf,
    /// `pg_dump --version`, e.g. `pg_dump (PostgreSQL) 15.19`.
    pub version: String,
}

/// Finds `pg_dump`, `pg_restore` and `psql` of the server's major version: first on `PATH`, then
/// in `/usr/lib/postgresql/<major>/bin`. Says precisely what is missing or mismatched.
pub fn find_tools(server_major: u32) -> Result<ClientTools, DriverError> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from(format!(
        "/usr/lib/postgresql/{server_major}/bin"
    )));
    let mut seen = Vec::new();
    for dir in candidates {
        let pg_dump = dir.join("pg_dump");
        if !pg_dump.is_file() {
            continue;
        }
        let version = tool_version(&pg_dump)?;
        let major = major_of(&version);
        if major == Some(server_major) {
            let tools = ClientTools {
                pg_restore: dir.join("pg_restore"),
                psql: dir.join("psql"),
                pg_dump,
                version,
            };
            for tool in [&tools.pg_restore, &tools.psql] {
                if !tool.is_file() {
                    return Err(DriverError::Unsupported(format!(
                        "{} is missing next to {}: install the PostgreSQL {server_major} client tools",
                        tool.display(),
                        tools.pg_dump.display()
                    )));
                }
            }
            return Ok(tools);
        }
        seen.push(format!("{} ({version})", pg_dump.display()));
    }
    Err(DriverError::Unsupported(if seen.is_empty() {
        format!("pg_dump not found: install the PostgreSQL {server_major} client tools (postgresql-client-{server_major})")
    } else {
        format!(
            "no pg_dump of PostgreSQL {server_major} (the server's version) found, only {}: install postgresql-client-{server_major} or put its bin directory first on PATH",
            seen.join(", ")
        )
    }))
}

fn tool_version(tool: &Path) -> Result<String, DriverError> {
    let out = Command::new(tool)
        .arg("--version")
        .output()
        .map_err(|e| DriverError::Unsupported(format!("cannot run {}: {e}", tool.display())))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `15` of `pg_dump (PostgreSQL) 15.19 (Debian ...)`.
fn major_of(version: &str) -> Option<u32> {
    version
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse::<u32>().ok())
}

/// The libpq environment that carries the connection to a child tool.
fn child_command(tool: &Path, settings: &ConnectionSettings) -> Command {
    let mut cmd = crate::interrupt::command(tool);
    // Nothing of the caller's libpq environment may redirect the child elsewhere.
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGOPTIONS",
        "PGAPPNAME",
        "PGCONNECT_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    // libpq takes the same host list, tried in the same order.
    let (hosts, ports): (Vec<_>, Vec<_>) = settings
        .hosts()
        .map(|(host, port)| {
            let host = match host {
                Host::Tcp(h) => std::ffi::OsString::from(h),
                Host::Socket(p) => p.clone().into_os_string(),
            };
            (host, port.to_string())
        })
        .unzip();
    cmd.env("PGHOST", hosts.join(std::ffi::OsStr::new(",")));
    cmd.env("PGPORT", ports.join(","))
        .env("PGUSER", &settings.user)
        .env("PGDATABASE", &settings.dbname)
        .env(
            "PGAPPNAME",
            settings
                .application_name
                .as_deref()
                .unwrap_or("identity-migrate"),
        );
    // The same TLS as the tool's own sessions: libpq gives these words the meaning the tool's
    // rustls layer copies, so backup and restore connect the way migrate did.
    for (name, value) in settings.tls.child_env() {
        cmd.env(name, value);
    }
    if settings.read_write_only {
        cmd.env("PGTARGETSESSIONATTRS", "read-write");
    } else {
        cmd.env_remove("PGTARGETSESSIONATTRS");
    }
    if let Some(options) = &settings.options {
        cmd.env("PGOPTIONS", options);
    }
    match settings.channel_binding {
        Some(true) => cmd.env("PGCHANNELBINDING", "require"),
        Some(false) => cmd.env("PGCHANNELBINDING", "disable"),
        None => cmd.env_remove("PGCHANNELBINDING"),
    };
    if let Some(password) = &settings.password {
        cmd.env("PGPASSWORD", password.expose_secret());
    }
    if let Some(timeout) = settings.connect_timeout {
        cmd.env("PGCONNECT_TIMEOUT", timeout.as_secs().max(2).to_string());
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Waits for a child, reporting progress every half second after the first second, and turns a
/// failure into one line with the tool's last message.
fn wait(
    mut child: Child,
    what: &str,
    progress: &mut dyn FnMut(Duration),
) -> Result<(), DriverError> {
    let started = Instant::now();
    crate::interrupt::track(&child);
    let errors = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(50));
                if started.elapsed() > Duration::from_secs(1) {
                    progress(started.elapsed());
                }
            }
            Err(e) => {
                crate::interrupt::finished(&child);
                return Err(DriverError::Io(format!("{what}: {e}")));
            }
        }
    };
    crate::interrupt::finished(&child);
    if status.success() {
        return Ok(());
    }
    Err(tool_failed(what, status, &joined(errors)))
}

/// Runs `pg_dump` of the whole database into `out`, reading `snapshot` when given so that the
/// archive holds exactly what the caller counted in that snapshot. `compress` is zlib's level
/// (0–9) for the custom and directory formats; a plain script is never compressed.
#[allow(clippy::too_many_arguments)]
pub fn dump(
    tools: &ClientTools,
    settings: &ConnectionSettings,
    format: Format,
    jobs: u32,
    compress: u32,
    snapshot: Option<&str>,
    out: &Path,
    progress: &mut dyn FnMut(Duration),
) -> Result<(), DriverError> {
    let mut cmd = child_command(&tools.pg_dump, settings);
    cmd.arg("--no-password")
        .arg(format!("--format={}", format.as_str()))
        .arg("--file")
        .arg(out);
    match format {
        Format::Custom => {
            cmd.arg(format!("--compress={}", compress.min(9)));
        }
        Format::Directory => {
            cmd.arg(format!("--compress={}", compress.min(9)))
                .arg(format!("--jobs={}", jobs.max(1)));
        }
        // A plain script replays as it is: it must drop what it recreates, or it could never
        // replace existing tables (`restore --yes`).
        Format::Plain => {
            cmd.args(["--clean", "--if-exists"]);
        }
    }
    if let Some(id) = snapshot {
        cmd.arg(format!("--snapshot={id}"));
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::Io(format!("cannot start {}: {e}", tools.pg_dump.display())))?;
    wait(child, "pg_dump", progress)
}

/// What a streamed dump gave: the archive's row counts and data digests, decoded in the same
/// pass, and the size and SHA-256 of the bytes written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streamed {
    /// Rows and data digest of every table, as the archive decodes.
    pub tables: BTreeMap<String, TableData>,
    /// Bytes written to the sink.
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

/// Dumps the database in the custom format and streams it into `sink`, decoding it as it goes:
/// every byte pg_dump writes is also fed to `pg_restore --file=-`, whose SQL output is counted
/// table by table, and to a SHA-256. One pass gives the archive, its checksum, its proof of
/// readability and its row counts; nothing reads the file again afterwards.
pub fn dump_streaming(
    tools: &ClientTools,
    settings: &ConnectionSettings,
    compress: u32,
    snapshot: Option<&str>,
    sink: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<Streamed, DriverError> {
    let mut cmd = child_command(&tools.pg_dump, settings);
    // No --file: pg_dump writes to stdout only when none is given ("-" would be a file name).
    cmd.args(["--no-password", "--format=custom"])
        .arg(format!("--compress={}", compress.min(9)));
    if let Some(id) = snapshot {
        cmd.arg(format!("--snapshot={id}"));
    }
    let mut dump = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::Io(format!("cannot start {}: {e}", tools.pg_dump.display())))?;
    crate::interrupt::track(&dump);
    let mut decode = crate::interrupt::command(&tools.pg_restore)
        .arg("--file=-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            DriverError::Io(format!("cannot start {}: {e}", tools.pg_restore.display()))
        })?;
    crate::interrupt::track(&decode);
    let dump_errors = drain(dump.stderr.take());
    let decode_errors = drain(decode.stderr.take());
    let decoded = decode.stdout.take();
    let counter = std::thread::spawn(move || match decoded {
        Some(out) => count_copy_rows(out),
        None => Err(DriverError::Io("pg_restore gave no output".to_owned())),
    });
    let pumped = pump(dump.stdout.take(), decode.stdin.take(), sink, progress);
    if pumped.is_err() {
        // A failed write (a full disk) must not leave pg_dump blocked on a pipe forever.
        let _ = dump.kill();
    }
    let dump_status = dump
        .wait()
        .map_err(|e| DriverError::Io(format!("pg_dump: {e}")))?;
    crate::interrupt::finished(&dump);
    let decode_status = decode
        .wait()
        .map_err(|e| DriverError::Io(format!("pg_restore: {e}")))?;
    crate::interrupt::finished(&decode);
    let counts = counter
        .join()
        .map_err(|_| DriverError::Io("the archive reader stopped".to_owned()))?;
    let (bytes, sha256) = pumped?;
    if !dump_status.success() {
        return Err(tool_failed("pg_dump", dump_status, &joined(dump_errors)));
    }
    if !decode_status.success() {
        return Err(tool_failed(
            "reading back the archive with pg_restore",
            decode_status,
            &joined(decode_errors),
        ));
    }
    Ok(Streamed {
        tables: counts?,
        bytes,
        sha256,
    })
}

/// Copies pg_dump's output to the sink and to the decoder, in 1 MiB chunks, hashing it on the
/// way: the checksum covers exactly the bytes written, without a second read of the file.
fn pump(
    from: Option<std::process::ChildStdout>,
    decoder: Option<std::process::ChildStdin>,
    sink: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, String), DriverError> {
    let mut from = from.ok_or_else(|| DriverError::Io("pg_dump gave no output".to_owned()))?;
    let mut decoder =
        decoder.ok_or_else(|| DriverError::Io("pg_restore took no input".to_owned()))?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut hasher = Sha256::new();
    loop {
        let n = from
            .read(&mut buffer)
            .map_err(|e| DriverError::Io(format!("reading pg_dump's output: {e}")))?;
        if n == 0 {
            break;
        }
        // The decoder first: it runs in its own process, so it works while this one hashes
        // and writes.
        decoder
            .write_all(&buffer[..n])
            .map_err(|e| DriverError::Io(format!("feeding the archive reader: {e}")))?;
        sink.write_all(&buffer[..n])
            .map_err(|e| DriverError::Io(format!("writing the backup: {e}")))?;
        hasher.update(&buffer[..n]);
        total += n as u64;
        progress(total);
    }
    sink.flush()
        .map_err(|e| DriverError::Io(format!("writing the backup: {e}")))?;
    Ok((total, hex(&hasher.finalize())))
}

fn drain(stream: Option<std::process::ChildStderr>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_string(&mut text);
        }
        text
    })
}

fn joined(handle: std::thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

fn tool_failed(what: &str, status: std::process::ExitStatus, stderr: &str) -> DriverError {
    // pg_dump and pg_restore put "detail:" and "Command was:" lines after the error itself.
    let last = stderr
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("error:"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message");
    DriverError::Statement {
        code: None,
        message: format!("{what} failed ({status}): {}", last.trim()),
    }
}

/// Reads a whole archive, decompressing every data block, and counts the rows of each table.
///
/// `pg_restore --list` only reads the table of contents and accepts a truncated archive; this
/// decodes everything, so truncation and corruption fail here.
pub fn read_archive(
    tools: &ClientTools,
    archive: &Path,
    format: Format,
) -> Result<BTreeMap<String, TableData>, DriverError> {
    if format == Format::Plain {
        let file = std::fs::File::open(archive)
            .map_err(|e| DriverError::Io(format!("cannot read {}: {e}", archive.display())))?;
        return count_copy_rows(file);
    }
    let mut child = crate::interrupt::command(&tools.pg_restore)
        .arg("--file=-")
        .arg(archive)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            DriverError::Io(format!("cannot start {}: {e}", tools.pg_restore.display()))
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| DriverError::Io("pg_restore gave no output".to_owned()))?;
    let counted = count_copy_rows(stdout);
    wait(child, "reading the archive with pg_restore", &mut |_| {})?;
    counted
}

/// Reads an archive's table of contents (`pg_restore --list`) and returns the names of its
/// TABLE DATA entries, as the list writes them (`schema table owner`, unquoted).
///
/// This reads the header and the table of contents only: it proves the archive is one this
/// `pg_restore` can read, not that its data is whole. The caller pairs it with the checksum.
pub fn list_table_data(tools: &ClientTools, archive: &Path) -> Result<Vec<String>, DriverError> {
    Ok(list_table_data_ids(tools, archive)?
        .into_iter()
        .map(|(_, name)| name)
        .collect())
}

/// [`list_table_data`] with each entry's dump id, which names its file in a directory archive
/// (`<id>.dat`, or `<id>.dat.gz` when compressed).
pub fn list_table_data_ids(
    tools: &ClientTools,
    archive: &Path,
) -> Result<Vec<(u32, String)>, DriverError> {
    let out = crate::interrupt::command(&tools.pg_restore)
        .arg("--list")
        .arg(archive)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            DriverError::Io(format!("cannot start {}: {e}", tools.pg_restore.display()))
        })?;
    if !out.status.success() {
        return Err(tool_failed(
            "reading the archive's table of contents with pg_restore",
            out.status,
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let (head, rest) = l.split_once(" TABLE DATA ")?;
            let id = head.split(';').next()?.trim().parse().ok()?;
            Some((id, rest.to_owned()))
        })
        .collect())
}

/// The data file of one table in an uncompressed directory archive, read once: its size and
/// SHA-256 (for the manifest) and, from the same pass, what a decode would give of it. The file
/// is the table's COPY data as pg_restore sends it, then pg_dump's end marker (a line of a
/// backslash and a period, then blank lines); the data digest is the state of the same SHA-256
/// before the end marker.
pub fn read_data_file(path: &Path) -> Result<(u64, String, TableData), DriverError> {
    let cannot =
        |e: std::io::Error| DriverError::Io(format!("cannot read {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    // The end marker: `\.` at the start of a line, then only newlines.
    let tail_len = size.min(64);
    let mut tail = vec![0u8; usize::try_from(tail_len).unwrap_or(64)];
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(size - tail_len))
            .map_err(cannot)?;
        file.read_exact(&mut tail).map_err(cannot)?;
        file.seek(SeekFrom::Start(0)).map_err(cannot)?;
    }
    let trimmed = tail.len() - tail.iter().rev().take_while(|b| **b == b'\n').count();
    let marker_at = trimmed.checked_sub(2).filter(|&i| {
        &tail[i..trimmed] == b"\\." && (i == 0 && tail_len == size || i > 0 && tail[i - 1] == b'\n')
    });
    let Some(marker_at) = marker_at else {
        return Err(DriverError::Io(format!(
            "{} does not end with the end of its table's data: it is truncated",
            path.display()
        )));
    };
    let data_len = size - tail_len + marker_at as u64;
    let mut hasher = Sha256::new();
    let mut rows = 0u64;
    let mut buffer = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < data_len {
        let want = usize::try_from((data_len - done).min(buffer.len() as u64)).unwrap_or(0);
        let n = file.read(&mut buffer[..want]).map_err(cannot)?;
        if n == 0 {
            return Err(DriverError::Io(format!(
                "{} shrank while read",
                path.display()
            )));
        }
        rows += memchr::memchr_iter(b'\n', &buffer[..n]).count() as u64;
        hasher.update(&buffer[..n]);
        done += n as u64;
    }
    let data = TableData {
        rows,
        sha256: hex(&hasher.clone().finalize()),
    };
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(cannot)?;
    hasher.update(&rest);
    if done + rest.len() as u64 != size {
        return Err(DriverError::Io(format!(
            "{} changed while read",
            path.display()
        )));
    }
    Ok((size, hex(&hasher.finalize()), data))
}

pub use migrate_core::backup::TableData;

/// The last comment pg_dump writes; a decoded archive without it is incomplete.
const DUMP_COMPLETE: &[u8] = b"-- PostgreSQL database dump complete";

/// The line that ends a COPY block. A data line never starts with a backslash and a period:
/// COPY's text format writes a backslash in the data as two.
const END_OF_DATA: &[u8] = b"\\.\n";

/// Counts the data lines of every `COPY ... FROM stdin;` block of a SQL stream, and requires
/// the stream to be complete: it must not end inside a data block, and pg_dump's closing
/// comment must be there. A truncated archive fails here even when its manifest was rewritten.
///
/// Data is hashed and counted a buffer at a time rather than line by line: the same digest
/// (SHA-256 over the data lines with their newlines, in order) at a fraction of the cost.
fn count_copy_rows(mut reader: impl Read) -> Result<BTreeMap<String, TableData>, DriverError> {
    let mut counts = BTreeMap::new();
    let mut current: Option<(String, u64, Sha256)> = None;
    let mut complete = false;
    let mut buffer = vec![0u8; 1 << 20];
    // Unprocessed bytes are buffer[start..end]; `start` is always at the beginning of a line.
    let (mut start, mut end) = (0usize, 0usize);
    let mut eof = false;
    let finder = memchr::memmem::Finder::new(b"\n\\.\n");
    loop {
        let mut need_more = false;
        while !need_more {
            let rest = &buffer[start..end];
            if let Some((table, rows, hasher)) = current.as_mut() {
                let ended = if rest.starts_with(END_OF_DATA) {
                    Some(END_OF_DATA.len())
                } else if eof && rest == &END_OF_DATA[..2] {
                    Some(2)
                } else {
                    None
                };
                if let Some(n) = ended {
                    let sha256 = hex(&std::mem::take(hasher).finalize());
                    counts.insert(
                        std::mem::take(table),
                        TableData {
                            rows: *rows,
                            sha256,
                        },
                    );
                    current = None;
                    start += n;
                    continue;
                }
                if rest.len() < END_OF_DATA.len() && !eof {
                    need_more = true;
                    continue;
                }
                // Everything up to the newline before the end marker, or else every whole line.
                let take = match finder.find(rest) {
                    Some(i) => Some(i + 1),
                    None => memchr::memrchr(b'\n', rest).map(|i| i + 1),
                };
                match take {
                    Some(n) => {
                        let data = &rest[..n];
                        *rows += memchr::memchr_iter(b'\n', data).count() as u64;
                        hasher.update(data);
                        start += n;
                    }
                    None => need_more = true,
                }
            } else {
                let Some(i) = memchr::memchr(b'\n', rest) else {
                    if eof && !rest.is_empty() {
                        // A last line without a newline: look at it as it is.
                        complete |= rest.trim_ascii_end() == DUMP_COMPLETE;
                        start = end;
                    }
                    need_more = true;
                    continue;
                };
                let text = rest[..i].trim_ascii_end();
                if text.starts_with(b"COPY ") && text.ends_with(b" FROM stdin;") {
                    let name = copy_target(&String::from_utf8_lossy(&text[5..]));
                    current = Some((name, 0, Sha256::new()));
                } else if text == DUMP_COMPLETE {
                    // Only comments and psql meta-commands (`\unrestrict`) follow it.
                    complete = true;
                }
                start += i + 1;
            }
        }
        if eof {
            break;
        }
        // Keep the unfinished line, and make room (a line longer than the buffer grows it).
        buffer.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        let n = loop {
            match reader.read(&mut buffer[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DriverError::Io(format!("reading the archive: {e}"))),
            }
        };
        end += n;
        eof = n == 0;
    }
    if let Some((table, _, _)) = current {
        return Err(DriverError::Io(format!(
            "the archive ends inside the data of {table}: it is truncated"
        )));
    }
    if !complete {
        return Err(DriverError::Io(
            "the archive does not end with pg_dump's closing line: it is truncated".to_owned(),
        ));
    }
    Ok(counts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The table of `COPY <name> (<columns>) FROM stdin;` (or `COPY <name>  FROM stdin;` for a
/// table without columns), as written: identifiers may be quoted and hold spaces and parens.
fn copy_target(rest: &str) -> String {
    let mut name = String::new();
    let mut quoted = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                name.push_str("\"\"");
                chars.next();
            }
            '"' => {
                quoted = !quoted;
                name.push(c);
            }
            ' ' if !quoted => break,
            _ => name.push(c),
        }
    }
    name
}

/// Restores an archive into the database of `settings` in ONE transaction with every error
/// fatal: it either all lands or nothing changes. `replace` first drops the archive's objects
/// where they exist (in the same transaction).
pub fn restore(
    tools: &ClientTools,
    settings: &ConnectionSettings,
    archive: &Path,
    format: Format,
    replace: bool,
    progress: &mut dyn FnMut(Duration),
) -> Result<(), DriverError> {
    let mut cmd = match format {
        Format::Plain => {
            let mut cmd = child_command(&tools.psql, settings);
            cmd.args([
                "--no-password",
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
            ])
            .args(["--set", "ON_ERROR_STOP=1", "--file"])
            .arg(archive);
            cmd
        }
        Format::Custom | Format::Directory => {
            let mut cmd = child_command(&tools.pg_restore, settings);
            cmd.args([
                "--no-password",
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
            ])
            .arg(format!("--dbname={}", settings.dbname));
            if replace {
                cmd.args(["--clean", "--if-exists"]);
            }
            cmd.arg(archive);
            cmd
        }
    };
    // One transaction cannot use pg_restore's parallel jobs; parallel index builds inside the
    // server give back most of what they would.
    cmd.env(
        "PGOPTIONS",
        "-c maintenance_work_mem=256MB -c max_parallel_maintenance_workers=2",
    );
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::Io(format!("cannot start the restore: {e}")))?;
    wait(child, "restore", progress)
}

/// Restores an archive into the empty database of `settings` with `jobs` parallel sessions
/// (`pg_restore --jobs`), every error fatal. Not atomic by itself: the caller restores into a
/// scratch database that nothing else uses, and drops it if this fails.
pub fn restore_parallel(
    tools: &ClientTools,
    settings: &ConnectionSettings,
    archive: &Path,
    format: Format,
    jobs: u32,
    progress: &mut dyn FnMut(Duration),
) -> Result<(), DriverError> {
    let mut cmd = match format {
        // A script has no table of contents to share out: psql replays it in one session.
        Format::Plain => return restore(tools, settings, archive, format, false, progress),
        Format::Custom | Format::Directory => {
            let mut cmd = child_command(&tools.pg_restore, settings);
            cmd.args(["--no-password", "--exit-on-error", "--no-owner"])
                .arg(format!("--jobs={}", jobs.max(1)))
                .arg(format!("--dbname={}", settings.dbname))
                .arg(archive);
            cmd
        }
    };
    cmd.env(
        "PGOPTIONS",
        "-c maintenance_work_mem=256MB -c max_parallel_maintenance_workers=2",
    );
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DriverError::Io(format!("cannot start the restore: {e}")))?;
    wait(child, "restore", progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_of_each_copy_block() {
        let sql = "SET x = 1;\nCOPY public.users (id, email) FROM stdin;\n1\ta\n2\tb\n\\.\n\nCOPY public.empty (id) FROM stdin;\n\\.\n\nCOPY public.\"odd (name\"\"s\"  FROM stdin;\n\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n\n";
        let counts = count_copy_rows(sql.as_bytes()).expect("counts");
        let rows = |t: &str| counts.get(t).map(|d| d.rows);
        assert_eq!(rows("public.users"), Some(2));
        assert_eq!(rows("public.empty"), Some(0));
        assert_eq!(rows("public.\"odd (name\"\"s\""), Some(1));
        let mut other = sql.replace("2\tb", "2\tc");
        let changed = count_copy_rows(other.as_bytes()).expect("counts");
        assert_ne!(
            changed["public.users"].sha256,
            counts["public.users"].sha256
        );
        other = sql.to_owned();
        assert_eq!(count_copy_rows(other.as_bytes()).expect("counts"), counts);
    }

    /// A reader that hands out at most `n` bytes per read, to cut lines and end markers
    /// across the counter's reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn counts_the_same_whatever_the_read_sizes() {
        let mut sql = String::from("SET x = 1;\nCOPY public.t (id, v) FROM stdin;\n");
        for i in 0..5000 {
            if i % 10 == 0 {
                // A value of a backslash and a period, at the start of a line: not the end.
                sql.push_str("\\\\.\tv\n");
            } else {
                sql.push_str(&format!("{i}\tvalue \\\\. {}\n", "y".repeat(i % 97)));
            }
        }
        sql.push_str("\\.\n\nCOPY public.e (id) FROM stdin;\n\\.\n");
        sql.push_str("COPY public.last (id) FROM stdin;\n7\n\\.\n\n--\n-- PostgreSQL database dump complete\n--\n");
        let whole = count_copy_rows(sql.as_bytes()).expect("counts");
        assert_eq!(whole["public.t"].rows, 5000);
        assert_eq!(whole["public.e"].rows, 0);
        assert_eq!(whole["public.last"].rows, 1);
        let by_line: String = sql
            .split_inclusive('\n')
            .skip_while(|l| !l.starts_with("COPY public.t"))
            .skip(1)
            .take(5000)
            .collect();
        let expected = hex(&Sha256::digest(by_line.as_bytes()));
        assert_eq!(whole["public.t"].sha256, expected);
        for n in [1, 2, 3, 7, 4096] {
            let trickled = count_copy_rows(Trickle(sql.as_bytes(), n)).expect("counts");
            assert_eq!(trickled, whole, "reads of {n} bytes");
        }
        // The end marker without its newline, at the very end of a stream.
        let cut = "COPY public.u (id) FROM stdin;\n1\n\\.";
        let err = count_copy_rows(cut.as_bytes()).expect_err("no closing line");
        assert!(err.to_string().contains("closing line"), "{err}");
    }

    #[test]
    fn a_data_file_gives_its_checksum_and_the_decode_in_one_pass() {
        let dir = std::env::temp_dir().join(format!("im-datafile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create");
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        };
        let mut data = String::new();
        for i in 0..3000 {
            data.push_str(&format!("{i}\tv\\\\. {}\n", "x".repeat(i % 50)));
        }
        let whole = format!("{data}\\.\n\n\n");
        let (bytes, sha, table) = read_data_file(&write("a.dat", whole.as_bytes())).expect("read");
        assert_eq!(bytes, whole.len() as u64);
        assert_eq!(sha, hex(&Sha256::digest(whole.as_bytes())));
        assert_eq!(table.rows, 3000);
        assert_eq!(table.sha256, hex(&Sha256::digest(data.as_bytes())));
        // What the decode of the same data gives (pg_restore writes it after its COPY line).
        let decoded = format!(
            "COPY public.a (i, v) FROM stdin;\n{whole}--\n-- PostgreSQL database dump complete\n"
        );
        assert_eq!(
            count_copy_rows(decoded.as_bytes()).expect("count")["public.a"],
            table
        );
        let (_, _, empty) = read_data_file(&write("e.dat", b"\\.\n\n\n")).expect("read");
        assert_eq!(empty.rows, 0);
        for cut in [&whole[..whole.len() - 4], &whole[..whole.len() / 2], ""] {
            let err = read_data_file(&write("cut.dat", cut.as_bytes())).expect_err("cut");
            assert!(err.to_string().contains("truncated"), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stream_cut_inside_data_is_refused() {
        let sql = "COPY public.users (id) FROM stdin;\n1\n2\n";
        let err = count_copy_rows(sql.as_bytes()).expect_err("truncated");
        assert!(err.to_string().contains("public.users"), "{err}");
    }

    #[test]
    fn a_stream_without_the_closing_line_is_refused() {
        let sql = "COPY public.users (id) FROM stdin;\n1\n\\.\n\nALTER TABLE ONLY public.users\n";
        let err = count_copy_rows(sql.as_bytes()).expect_err("truncated");
        assert!(err.to_string().contains("closing line"), "{err}");
    }

    #[test]
    fn reads_the_major_version_of_a_tool() {
        assert_eq!(
            major_of("pg_dump (PostgreSQL) 15.19 (Debian 15.19-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_of("pg_dump (PostgreSQL) 17beta1"), None);
    }
}
