//! `sqlite:` URLs: which database file (or the in-memory database) a URL names.
//!
//! | URL | database |
//! |---|---|
//! | `sqlite::memory:` | a private in-memory database |
//! | `sqlite:path.db`, `sqlite:/abs/path.db` | that path, as written |
//! | `sqlite://relative/path.db` | `relative/path.db`, from the working directory |
//! | `sqlite:///absolute/path.db` | `/absolute/path.db` |
//! | `sqlite+<driver>:///relative.db` | `relative.db` (SQLAlchemy's reading, see below) |
//! | `sqlite+<driver>:////absolute.db` | `/absolute.db` |
//! | `sqlite+<driver>://`, `...:///:memory:` | in memory (SQLAlchemy's reading) |
//!
//! The plain `sqlite:` forms follow the common URL reading (the path starts after `//`), as most
//! migration tools read them. The SQLAlchemy forms (`sqlite+aiosqlite:`, `sqlite+pysqlite:`) are
//! what the service's own configuration holds, and they must name the file the service opens:
//! SQLAlchemy reads `sqlite:///x.db` as the *relative* path `x.db` and needs four slashes for an
//! absolute one, so a URL with a `+driver` is read its way.
//!
//! The path is percent-decoded. Query strings are refused rather than ignored: SQLite's URI
//! parameters (`mode=ro`, `cache=shared`) change what a connection may do, and silently dropping
//! one would run a migration the operator did not ask for.
//!
//! Errors name the scheme and nothing else of the URL, like every error of the tool that
//! mentions a URL.

use std::fmt;
use std::path::{Path, PathBuf};

/// The database a `sqlite:` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A database file (created when missing).
    File(PathBuf),
    /// A private in-memory database, gone when its connection closes.
    Memory,
}

impl SqliteTarget {
    /// The database file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            SqliteTarget::File(path) => Some(path),
            SqliteTarget::Memory => None,
        }
    }
}

impl fmt::Display for SqliteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqliteTarget::File(path) => write!(f, "sqlite:{}", path.display()),
            SqliteTarget::Memory => f.write_str("sqlite::memory:"),
        }
    }
}

/// What to write instead, appended to every error.
const FORMS: &str = "write sqlite:///absolute/path.db, sqlite://relative/path.db, sqlite:path.db or sqlite::memory:";

/// Parses a `sqlite:` (or SQLAlchemy `sqlite+<driver>:`) URL.
///
/// Errors say what is wrong with the URL without repeating it (only its scheme).
pub fn parse_url(url: &str) -> Result<SqliteTarget, String> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(format!("not a SQLite URL (no scheme): {FORMS}"));
    };
    let lower = scheme.to_ascii_lowercase();
    let sqlalchemy = match lower.strip_prefix("sqlite") {
        Some("") => false,
        Some(driver) if driver.starts_with('+') && driver.len() > 1 => true,
        _ => {
            // Echo the scheme only when it looks like one: anything else may be a mistyped
            // URL whose first colon comes after a password.
            let shown = if !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            {
                format!(" (scheme {scheme})")
            } else {
                String::new()
            };
            return Err(format!("not a SQLite URL{shown}: {FORMS}"));
        }
    };
    let fail = |what: &str| Err(format!("{scheme}: URL {what}: {FORMS}"));
    if rest.contains('?') || rest.contains('#') {
        return fail("has a query string or fragment, which is not supported (percent-encode a `?` or `#` in a file name)");
    }
    if rest == ":memory:" {
        return Ok(SqliteTarget::Memory);
    }
    let raw = match rest.strip_prefix("//") {
        // `sqlite:path.db`, `sqlite:/abs/path.db`: the path as written.
        None => rest,
        Some(after) if sqlalchemy => {
            if after.is_empty() {
                // SQLAlchemy's `sqlite://` is the in-memory database.
                return Ok(SqliteTarget::Memory);
            }
            match after.strip_prefix('/') {
                Some(path) => path,
                None => return fail("names a host, which SQLite has no use for"),
            }
        }
        Some(after) => after,
    };
    if raw.is_empty() {
        return fail("names no database file");
    }
    // `sqlite:///:memory:` is SQLAlchemy's spelling, and nobody means a file at the root.
    if raw == ":memory:" || raw == "/:memory:" {
        return Ok(SqliteTarget::Memory);
    }
    let decoded = match percent_decode(raw) {
        Some(d) => d,
        None => return fail("has an invalid percent escape or is not UTF-8 once decoded"),
    };
    if decoded.ends_with('/') {
        return fail("names a directory, not a database file");
    }
    if decoded.contains('\0') {
        return fail("holds a NUL character");
    }
    Ok(SqliteTarget::File(PathBuf::from(decoded)))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
