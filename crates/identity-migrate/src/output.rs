//! Output: tables and SQL scripts, written to any `io::Write` so that each format is tested.

use migrate_engine::Script;
pub use migrate_engine::{heads_text, Framing};
use std::io::{self, Write};

/// Writes rows as a table with a header, columns padded to their widest cell.
pub fn table(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Writes `key value` lines with the keys padded to one width, as `status` and `backup` print.
pub fn key_values(out: &mut dyn Write, rows: &[(&str, String)]) -> io::Result<()> {
    for (k, v) in rows {
        writeln!(out, "{k:<9} {v}")?;
    }
    Ok(())
}

/// Writes a script: a header of comment lines, then every statement in execution order, each
/// transaction framed as the dialect's driver executes it (see [`migrate_engine::script_text`]).
pub fn script(
    out: &mut dyn Write,
    header: &[String],
    script: &Script,
    framing: Framing,
) -> io::Result<()> {
    out.write_all(migrate_engine::script_text(header, script, framing).as_bytes())
}

/// Milliseconds for people: `12 ms`, `1.4 s`.
pub fn duration_text(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::{Dialect, Direction, Heads, Step};
    use migrate_engine::PreparedStep;

    fn step(rev: &str, before: &[&str], after: &[&str], transactional: bool) -> PreparedStep {
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Heads>();
        PreparedStep {
            step: Step {
                revision: rev.to_owned(),
                direction: Direction::Up,
                heads_before: set(before),
                heads_after: set(after),
            },
            message: format!("make {rev}"),
            transactional,
            statements: vec![format!("CREATE TABLE t_{rev} (id integer)")],
            bookkeeping: vec!["UPDATE alembic_version SET version_num = 'x'".to_owned()],
            cleanup: Vec::new(),
            phases: Vec::new(),
        }
    }

    #[test]
    fn table_pads_columns_and_trims_line_ends() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["A", "LONG HEADER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), String::new()],
            ],
        )
        .expect("write");
        insta::assert_snapshot!(String::from_utf8(out).expect("utf8"), @r"
        A          LONG HEADER
        wide cell  x
        y
        ");
    }

    #[test]
    fn dry_run_script_frames_each_revision_in_its_transaction() {
        let s = Script {
            bootstrap: vec![
                "CREATE TABLE IF NOT EXISTS alembic_version (version_num varchar(32))".into(),
            ],
            steps: vec![
                step("aaaa", &[], &["aaaa"], true),
                step("bbbb", &["aaaa"], &["bbbb"], false),
            ],
            single_transaction: false,
            dialect: Dialect::Postgres,
        };
        let mut out = Vec::new();
        script(&mut out, &["dry run".into()], &s, Framing::Transactions).expect("write");
        insta::assert_snapshot!(String::from_utf8(out).expect("utf8"));
    }

    #[test]
    fn bare_script_has_no_transaction_statements() {
        let s = Script {
            bootstrap: Vec::new(),
            steps: vec![step("aaaa", &[], &["aaaa"], true)],
            single_transaction: true,
            dialect: Dialect::Postgres,
        };
        let mut out = Vec::new();
        script(&mut out, &[], &s, Framing::Bare).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            !text.contains("BEGIN") && !text.contains("COMMIT"),
            "{text}"
        );
        assert!(text.contains("CREATE TABLE t_aaaa (id integer);"), "{text}");
    }
}
