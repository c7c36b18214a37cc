//! The manifest beside every backup: what it holds and how to check it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the archive (the file's own name for a one-file archive).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

impl From<migrate_core::backup::ArchiveFile> for FileEntry {
    fn from(f: migrate_core::backup::ArchiveFile) -> Self {
        FileEntry {
            path: f.path,
            bytes: f.bytes,
            sha256: f.sha256,
        }
    }
}

/// What a backup holds, written as JSON beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of this manifest's layout.
    pub format_version: u32,
    /// `identity-migrate`.
    pub tool: String,
    /// The tool's version.
    pub tool_version: String,
    /// When the snapshot was taken (UTC).
    pub created_at: String,
    /// The database, as a URL without its password.
    pub database: String,
    /// The server's version.
    pub server_version: String,
    /// `pg_dump --version`; empty for a SQLite backup, which no client tool writes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pg_dump_version: String,
    /// `custom`, `directory` or `plain`; `sqlite` for a SQLite database file.
    pub format: String,
    /// The database's revision(s) at the time.
    pub revisions: Vec<String>,
    /// Rows per table, counted in the snapshot the archive holds.
    pub tables: BTreeMap<String, u64>,
    /// SHA-256 of each table's data as the archive decodes it: catches a change to the data
    /// even where a file's checksum was rewritten to match.
    pub table_sha256: BTreeMap<String, String>,
    /// Every file with its size and SHA-256.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest as pretty JSON.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a manifest.
    pub fn from_json(text: &str) -> Result<Manifest, serde_json::Error> {
        serde_json::from_str(text)
    }
}
