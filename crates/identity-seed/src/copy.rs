//! Rows in COPY's text format, streamed to the server in large chunks.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use crate::gen::{timestamp_text, uuid_text};
use crate::SeedError;

/// Bytes of rows gathered before they are handed to the connection: large enough that the
/// per-message cost vanishes, small enough that memory stays flat whatever the scale.
const CHUNK: usize = 256 * 1024;

/// Rows per COPY statement. A table with AFTER row triggers (one a later revision adds, or a
/// foreign key the seeder could not defer) queues one event per row in server memory until the
/// statement ends; ending the statement every million rows keeps that queue bounded.
const ROWS_PER_STATEMENT: u64 = 1_000_000;

/// One table's rows being written: the current chunk plus a reused scratch string for
/// formatted fields, so no row allocates.
pub(crate) struct Out {
    buf: Vec<u8>,
    scratch: String,
    /// Fields written in the current row.
    col: usize,
    /// Fields a row must have: a generator that forgets one would shift every later column.
    width: usize,
    rows: u64,
}

impl Out {
    fn new(width: usize) -> Out {
        Out {
            buf: Vec::with_capacity(CHUNK + 4096),
            scratch: String::with_capacity(256),
            col: 0,
            width,
            rows: 0,
        }
    }

    fn sep(&mut self) {
        if self.col > 0 {
            self.buf.push(b'\t');
        }
        self.col += 1;
    }

    /// Ends the row.
    pub(crate) fn end(&mut self) {
        assert_eq!(
            self.col, self.width,
            "a generated row has the wrong number of fields"
        );
        self.buf.push(b'\n');
        self.col = 0;
        self.rows += 1;
    }

    /// A text field, escaped.
    pub(crate) fn s(&mut self, value: &str) {
        self.sep();
        escape_into(&mut self.buf, value.as_bytes());
    }

    /// A text field or NULL.
    pub(crate) fn opt_s(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.s(v),
            None => self.null(),
        }
    }

    /// A formatted text field, escaped (use with `format_args!`).
    pub(crate) fn f(&mut self, args: fmt::Arguments<'_>) {
        self.sep();
        self.scratch.clear();
        // Writing to a String cannot fail.
        let _ = self.scratch.write_fmt(args);
        escape_into(&mut self.buf, self.scratch.as_bytes());
    }

    /// A text field built by `write` into the reused scratch string, then escaped; for values
    /// assembled in a loop (JSON arrays) or by a helper shared between tables.
    pub(crate) fn build(&mut self, write: impl FnOnce(&mut String)) {
        self.sep();
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        write(&mut scratch);
        escape_into(&mut self.buf, scratch.as_bytes());
        self.scratch = scratch;
    }

    /// A field whose bytes the caller writes directly; for values (hex, base64, numbers) that
    /// cannot contain anything COPY would need escaped.
    pub(crate) fn raw(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.sep();
        write(&mut self.buf);
    }

    /// NULL.
    pub(crate) fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"\\N");
    }

    /// A UUID.
    pub(crate) fn uuid(&mut self, u: u128) {
        self.sep();
        uuid_text(u, &mut self.buf);
    }

    /// A UUID or NULL.
    pub(crate) fn opt_uuid(&mut self, u: Option<u128>) {
        match u {
            Some(u) => self.uuid(u),
            None => self.null(),
        }
    }

    /// A timestamp, UTC, whole seconds.
    pub(crate) fn ts(&mut self, secs: i64) {
        self.sep();
        timestamp_text(secs, &mut self.buf);
    }

    /// A timestamp or NULL.
    pub(crate) fn opt_ts(&mut self, secs: Option<i64>) {
        match secs {
            Some(s) => self.ts(s),
            None => self.null(),
        }
    }

    /// An integer.
    pub(crate) fn int(&mut self, v: i64) {
        self.sep();
        // Writing to a Vec cannot fail.
        let _ = write!(self.buf, "{v}");
    }

    /// A boolean, in COPY's `t`/`f` spelling.
    pub(crate) fn bool(&mut self, v: bool) {
        self.sep();
        self.buf.push(if v { b't' } else { b'f' });
    }
}

/// COPY text format: backslash, tab, newline and carriage return are the bytes that would be
/// read as syntax, so they are written as escapes; everything else (UTF-8 included) verbatim.
pub(crate) fn escape_into(buf: &mut Vec<u8>, value: &[u8]) {
    if !value
        .iter()
        .any(|c| matches!(c, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        buf.extend_from_slice(value);
        return;
    }
    for &c in value {
        match c {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(c),
        }
    }
}

/// Streams `count` generator calls (each writes zero or more rows) into `table` with COPY,
/// returning the number of rows the server says it loaded.
pub(crate) fn copy_table(
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[&str],
    count: u64,
    mut generate: impl FnMut(u64, &mut Out),
) -> Result<u64, SeedError> {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    // FREEZE: the rows are written frozen and the pages all-visible, so whatever runs on the
    // data next (a migration being measured) does not first rewrite every page to set hint bits.
    // Allowed because the seeding transaction truncated the table.
    let sql = format!(
        "COPY {table} ({}) FROM STDIN WITH (FREEZE)",
        quoted.join(", ")
    );
    let mut out = Out::new(columns.len());
    let mut loaded = 0;
    let mut next = 0;
    while next < count {
        let mut writer = tx.copy_in(sql.as_str())?;
        out.rows = 0;
        while next < count && out.rows < ROWS_PER_STATEMENT {
            generate(next, &mut out);
            next += 1;
            if out.buf.len() >= CHUNK {
                writer.write_all(&out.buf).map_err(SeedError::from_io)?;
                out.buf.clear();
            }
        }
        writer.write_all(&out.buf).map_err(SeedError::from_io)?;
        out.buf.clear();
        let server_rows = writer.finish()?;
        debug_assert_eq!(server_rows, out.rows);
        loaded += server_rows;
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_copy_syntax_bytes() {
        let mut buf = Vec::new();
        escape_into(&mut buf, b"a\tb\nc\\d\re");
        assert_eq!(buf, b"a\\tb\\nc\\\\d\\re");
        buf.clear();
        escape_into(&mut buf, "plain é".as_bytes());
        assert_eq!(buf, "plain é".as_bytes());
    }

    #[test]
    fn rows_are_tab_separated_with_null_marker() {
        let mut out = Out::new(4);
        out.s("x y");
        out.null();
        out.bool(true);
        out.int(-3);
        out.end();
        assert_eq!(out.buf, b"x y\t\\N\tt\t-3\n");
    }
}
