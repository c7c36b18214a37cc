//! What each command reports, as plain values, and the one reporter that writes any of them as
//! the text an operator reads or as the JSON a machine reads, to any `io::Write`.
//!
//! A command builds its report and hands it to [`emit`]; it never formats text itself. The JSON
//! field names are the serialised fields below, the same on every database (the README's
//! "JSON output" section lists them).

use crate::output::{self, duration_text, Framing};
use migrate_engine::Script;
use serde::Serialize;
use std::io::{self, Write};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The readable text (tables, `key value` lines).
    Text,
    /// One JSON document on one line.
    Json,
}

impl Format {
    /// `--json` or not.
    pub fn json(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// A command's result, as text.
pub trait Report: Serialize {
    /// Writes the report as the text an operator reads.
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()>;
}

/// Writes `report` to `out` in `format`: the reporter of every command.
pub fn emit<R: Report>(out: &mut dyn Write, report: &R, format: Format) -> io::Result<()> {
    match format {
        Format::Text => report.write_text(out),
        Format::Json => {
            serde_json::to_writer(&mut *out, report).map_err(io::Error::other)?;
            writeln!(out)
        }
    }
}

/// Revisions as text, by the engine's one rule (`base` when none).
fn heads(ids: &[String]) -> String {
    output::heads_text(&ids.iter().cloned().collect())
}

/// `status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The database, its password hidden.
    pub database: String,
    /// The revisions the database is at.
    pub current: Vec<CurrentRevision>,
    /// The graph's heads.
    pub heads: Vec<String>,
    /// How many revisions are pending.
    pub pending: usize,
    /// Whether the database is at head.
    pub at_head: bool,
    /// Revisions a phased run stopped inside (PostgreSQL): neither applied nor untouched.
    pub half_way: Vec<HalfWay>,
    /// The connection's protection (PostgreSQL); `null` for SQLite.
    pub connection: Option<crate::open::Protection>,
}

/// A revision a phased run stopped inside; `migrate` (or the same `rollback`) resumes it.
#[derive(Debug, Serialize)]
pub struct HalfWay {
    /// Its id.
    pub revision: String,
    /// `up` or `down`.
    pub direction: &'static str,
    /// Its phases committed so far.
    pub phases_done: usize,
    /// Rows its batched updates committed so far.
    pub rows_done: i64,
}

impl HalfWay {
    /// The engine's value, as reported.
    pub fn of(h: &migrate_engine::HalfWay) -> HalfWay {
        HalfWay {
            revision: h.revision.clone(),
            direction: h.direction.as_str(),
            phases_done: h.phases_done,
            rows_done: h.rows_done,
        }
    }
}

/// A revision the database is at.
#[derive(Debug, Serialize)]
pub struct CurrentRevision {
    /// Its id.
    pub revision: String,
    /// Its message.
    pub message: String,
    /// Whether it is a head.
    pub head: bool,
}

impl Report for Status {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let current = if self.current.is_empty() {
            "base (no revision applied)".to_owned()
        } else {
            self.current
                .iter()
                .map(|c| {
                    let head = if c.head { " (head)" } else { "" };
                    format!("{}{head} {}", c.revision, c.message)
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let state = if let Some(h) = self.half_way.first() {
            // A phased run stopped inside this revision: it is neither applied nor untouched.
            let rows = if h.rows_done > 0 {
                format!(", {} row(s) backfilled", h.rows_done)
            } else {
                String::new()
            };
            let (way, resume) = if h.direction == "down" {
                (
                    "downgrade",
                    "run the same `identity-migrate rollback` again to finish it",
                )
            } else {
                ("upgrade", "run `identity-migrate migrate` to resume it")
            };
            format!(
                "{} stopped half-way through its {way} ({} phase(s) committed{rows}): {resume}",
                h.revision, h.phases_done
            )
        } else if self.at_head {
            "up to date".to_owned()
        } else {
            format!(
                "{} revision(s) pending: run `identity-migrate migrate`",
                self.pending
            )
        };
        let mut rows = vec![("database", self.database.clone())];
        if let Some(connection) = &self.connection {
            rows.push(("tls", connection.summary.clone()));
        }
        rows.extend([
            ("current", current),
            ("head", self.heads.join(", ")),
            ("pending", self.pending.to_string()),
            ("state", state),
        ]);
        output::key_values(out, &rows)
    }
}

/// `list` (`history`): every revision, oldest first.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct List {
    /// The revisions.
    pub revisions: Vec<ListedRevision>,
}

/// One revision of `list`.
#[derive(Debug, Serialize)]
pub struct ListedRevision {
    /// Its id.
    pub revision: String,
    /// Its down revisions.
    pub down_revisions: Vec<String>,
    /// Its message.
    pub message: String,
    /// Its creation date.
    pub created: String,
    /// Whether it is applied.
    pub applied: bool,
    /// Whether the database is at it.
    pub current: bool,
    /// Whether it is a head.
    pub head: bool,
    /// When it was last applied (ISO 8601, UTC).
    pub applied_at: Option<String>,
    /// How long that took, in milliseconds.
    pub duration_ms: Option<f64>,
}

impl Report for List {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let rows: Vec<Vec<String>> = self
            .revisions
            .iter()
            .map(|r| {
                let mut marks = Vec::new();
                if r.current {
                    marks.push("current");
                }
                if r.head {
                    marks.push("head");
                }
                vec![
                    r.revision.clone(),
                    if r.down_revisions.is_empty() {
                        "-".to_owned()
                    } else {
                        r.down_revisions.join(",")
                    },
                    if r.applied { "yes" } else { "no" }.to_owned(),
                    marks.join(","),
                    r.applied_at.clone().unwrap_or_default(),
                    r.duration_ms.map(duration_text).unwrap_or_default(),
                    r.message.clone(),
                ]
            })
            .collect();
        output::table(
            out,
            &[
                "REVISION",
                "DOWN",
                "APPLIED",
                "MARK",
                "APPLIED AT",
                "TOOK",
                "MESSAGE",
            ],
            &rows,
        )
    }
}

/// `check`: the live schema against its revision.
#[derive(Debug, Serialize)]
pub struct Check {
    /// The database, its password hidden.
    pub database: String,
    /// The revisions the database is at.
    pub current: Vec<String>,
    /// Whether nothing differs, nothing is pending and nothing changed.
    pub clean: bool,
    /// Pending revisions.
    pub pending: Vec<String>,
    /// Applied revisions edited since (their checksum differs).
    pub changed: Vec<String>,
    /// What differs between the live schema and the revision's.
    pub differences: Vec<Difference>,
    /// The pending revisions' messages, for the text.
    #[serde(skip)]
    pub pending_messages: Vec<String>,
}

/// One difference found by `check`.
#[derive(Debug, Serialize)]
pub struct Difference {
    /// `missing`, `extra` or `changed`.
    pub change: String,
    /// What kind of object.
    pub object: String,
    /// Its qualified name.
    pub name: String,
    /// What it is or what changed; may be empty.
    pub detail: String,
    /// The whole difference as one line.
    pub text: String,
}

impl Difference {
    /// The report of one difference.
    pub fn of(d: &migrate_core::diff::Difference) -> Difference {
        Difference {
            change: d.change.to_string(),
            object: d.object.to_string(),
            name: d.name.clone(),
            detail: d.detail.clone(),
            text: d.to_string(),
        }
    }
}

impl Report for Check {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "database  {}", self.database)?;
        writeln!(out, "revision  {}", heads(&self.current))?;
        for d in &self.differences {
            writeln!(out, "drift     {}", d.text)?;
        }
        for (id, message) in self.pending.iter().zip(&self.pending_messages) {
            writeln!(out, "pending   {id} {message}")?;
        }
        for id in &self.changed {
            writeln!(
                out,
                "changed   {id}: edited after it was applied (checksum differs)"
            )?;
        }
        if self.clean {
            writeln!(
                out,
                "clean     the schema is exactly what revision {} defines",
                heads(&self.current)
            )?;
        }
        Ok(())
    }
}

/// `verify`: the checks after a deployment.
#[derive(Debug, Serialize)]
pub struct Verify {
    /// Whether every check passed.
    pub ok: bool,
    /// The checks, in order.
    pub checks: Vec<VerifyCheck>,
}

/// One check of `verify`.
#[derive(Debug, Serialize)]
pub struct VerifyCheck {
    /// Its name: `connect`, `tls`, `server`, `revision`, `schema`, then the database's own.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Report for Verify {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for c in &self.checks {
            writeln!(
                out,
                "{:<5} {:<9} {}",
                if c.ok { "ok" } else { "FAIL" },
                c.check,
                c.detail
            )?;
        }
        Ok(())
    }
}

/// `migrate`, `migrate-to` and `rollback`, once run.
#[derive(Debug, Serialize)]
pub struct Migration {
    /// The verified backup taken first, if one was.
    pub backup: Option<String>,
    /// Applied revisions whose new checksum was accepted (`--accept-changed`).
    pub accepted: Vec<String>,
    /// The steps run, in order.
    pub steps: Vec<MigratedStep>,
    /// `up`, `down`, or `null` when there was nothing to do.
    pub direction: Option<String>,
    /// The revisions the database is at now.
    pub current: Vec<String>,
    /// Whether it is at head now.
    pub at_head: bool,
    /// The whole run's wall time, in milliseconds.
    pub duration_ms: f64,
}

/// One step of a run.
#[derive(Debug, Serialize)]
pub struct MigratedStep {
    /// The revision.
    pub revision: String,
    /// `up` or `down`.
    pub direction: String,
    /// Its message.
    pub message: String,
    /// Its wall time, retries included, in milliseconds.
    pub duration_ms: f64,
}

impl MigratedStep {
    /// The step's line, written as it finishes (a long run shows where it is).
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "{} {}  {}  ({})",
            if self.direction == "up" {
                "applied "
            } else {
                "reverted"
            },
            self.revision,
            self.message,
            duration_text(self.duration_ms)
        )
    }
}

/// What a run says as it goes, in text only: JSON is the one document at the end.
pub enum Progress<'a> {
    /// Revisions whose new checksum was accepted.
    Accepted(&'a [String]),
    /// How many steps are about to run.
    Planned(usize),
    /// A step finished.
    Step(&'a MigratedStep),
    /// The verified backup taken first.
    Backup(&'a str),
}

impl Progress<'_> {
    /// Writes the progress line(s), nothing for an empty plan.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Progress::Accepted(ids) => {
                for id in *ids {
                    writeln!(
                        out,
                        "accepted {id}  its new checksum is recorded (--accept-changed)"
                    )?;
                }
                Ok(())
            }
            Progress::Planned(0) => Ok(()),
            Progress::Planned(n) => writeln!(out, "{n} step(s) to run"),
            Progress::Step(step) => step.write_text(out),
            Progress::Backup(path) => writeln!(out, "backup   {path} (verified)"),
        }
    }
}

impl Report for Migration {
    /// The summary line (the steps were written as they finished).
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let at = heads(&self.current);
        let head_note = if self.at_head { " (head)" } else { "" };
        let took = duration_text(self.duration_ms);
        match self.direction.as_deref() {
            None => writeln!(out, "Nothing to do: the database is at {at}{head_note}."),
            Some("up") => writeln!(
                out,
                "Applied {} revision(s) in {took}; the database is at {at}{head_note}.",
                self.steps.len()
            ),
            Some(_) => writeln!(
                out,
                "Reverted {} revision(s) in {took}; the database is at {at}{head_note}.",
                self.steps.len()
            ),
        }
    }
}

/// A dry run of `migrate`, `migrate-to` or `rollback`: what would run, nothing executed.
#[derive(Debug, Serialize)]
pub struct DryRun {
    /// Always true: nothing was executed.
    pub dry_run: bool,
    /// The database, its password hidden.
    pub database: String,
    /// The revisions the run would start from.
    pub from: Vec<String>,
    /// The revisions it would end at.
    pub to: Vec<String>,
    /// Whether the SQLite file does not exist yet (planned from an empty database).
    pub database_missing: bool,
    /// Where the verified backup would go (`--backup` with something to run).
    pub backup_into: Option<String>,
    /// The statements creating the tool's own tables, first.
    pub bootstrap: Vec<String>,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// The script as the text shows it.
    #[serde(skip)]
    pub script: Script,
    /// How the text frames it.
    #[serde(skip)]
    pub framing: Framing,
}

/// One step of a plan.
#[derive(Debug, Serialize)]
pub struct PlannedStep {
    /// The revision.
    pub revision: String,
    /// `up` or `down`.
    pub direction: String,
    /// The revisions before it.
    pub from: Vec<String>,
    /// The revisions after it.
    pub to: Vec<String>,
    /// The revision's message.
    pub message: String,
    /// Whether it runs in a transaction.
    pub transactional: bool,
    /// The revision's statements, then the tool's bookkeeping, in order.
    pub statements: Vec<String>,
}

impl PlannedStep {
    /// The report of one prepared step.
    pub fn of(p: &migrate_engine::PreparedStep) -> PlannedStep {
        PlannedStep {
            revision: p.step.revision.clone(),
            direction: p.step.direction.as_str().to_owned(),
            from: p.step.heads_before.iter().cloned().collect(),
            to: p.step.heads_after.iter().cloned().collect(),
            message: p.message.clone(),
            transactional: p.transactional,
            statements: p.statements.iter().chain(&p.bookkeeping).cloned().collect(),
        }
    }
}

impl Report for DryRun {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut header = vec![
            "identity-migrate dry run: nothing below was executed".to_owned(),
            format!("Database: {}", self.database),
            format!(
                "From {} to {}: {} step(s)",
                heads(&self.from),
                heads(&self.to),
                self.steps.len()
            ),
        ];
        if self.database_missing {
            header.push(
                "The database file does not exist yet: planned from an empty database (nothing was created)."
                    .to_owned(),
            );
        }
        if let Some(dir) = &self.backup_into {
            header.push(format!(
                "A verified backup would be taken first, into {dir} (none was taken now)."
            ));
        }
        output::script(out, &header, &self.script, self.framing)
    }
}

/// `revision`: the file written.
#[derive(Debug, Serialize)]
pub struct NewRevision {
    /// The new revision's id; `null` when nothing was generated.
    pub revision: Option<String>,
    /// Its down revisions.
    pub down_revisions: Vec<String>,
    /// The file written; `null` when nothing was generated.
    pub path: Option<String>,
    /// The list it was registered in.
    pub registered_in: Option<String>,
    /// Whether the ops were generated from `models()` (`--autogenerate`).
    pub autogenerated: bool,
}

impl Report for NewRevision {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match (&self.revision, &self.path, &self.registered_in) {
            (Some(id), Some(path), Some(list)) => writeln!(
                out,
                "wrote {path} (revision {id}, down revision {}); registered in {list}",
                heads(&self.down_revisions)
            ),
            _ => writeln!(
                out,
                "models() equals the schema at head: there is nothing to generate; no file written"
            ),
        }
    }
}

/// `generate-sql`: a script for review. Its text is the script itself.
#[derive(Debug, Serialize)]
pub struct GeneratedSql {
    /// `postgresql` or `sqlite`.
    pub dialect: String,
    /// The revisions the script starts from.
    pub from: Vec<String>,
    /// The revisions it ends at.
    pub to: Vec<String>,
    /// How to apply it.
    pub apply_with: String,
    /// Whether some statements cannot run in a transaction.
    pub outside_transaction: bool,
    /// The steps, in order.
    pub steps: Vec<PlannedStep>,
    /// The script.
    #[serde(skip)]
    pub script: Script,
    /// How the text frames it.
    #[serde(skip)]
    pub framing: Framing,
}

impl Report for GeneratedSql {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let dialect = if self.dialect == "sqlite" {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        let mut header = vec![
            "identity-migrate generate-sql".to_owned(),
            format!(
                "Range: {} -> {} ({} step(s)), {dialect}",
                heads(&self.from),
                heads(&self.to),
                self.steps.len()
            ),
            self.apply_with.clone(),
        ];
        if self.outside_transaction {
            header.push(
                "WARNING: some statements cannot run in a transaction: apply without -1".to_owned(),
            );
        }
        output::script(out, &header, &self.script, self.framing)
    }
}

/// `backup`: the archive written and verified.
#[derive(Debug, Serialize)]
pub struct Backup {
    /// The archive (file or directory).
    pub backup: String,
    /// Its manifest.
    pub manifest: String,
    /// The archive's format: `directory`, `custom`, `plain` (PostgreSQL) or `sqlite`.
    pub format: String,
    /// The zlib level of a compressed format; `null` for the others.
    pub compression: Option<u32>,
    /// The revisions the database was at.
    pub revisions: Vec<String>,
    /// How many tables it holds.
    pub tables: usize,
    /// How many rows, all tables together.
    pub rows: u64,
    /// The archive's size in bytes.
    pub bytes: u64,
    /// How it was verified as it was written.
    pub verified: String,
}

impl Report for Backup {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let format = match self.compression {
            Some(level) => format!("{}, zlib level {level}", self.format),
            None => self.format.clone(),
        };
        output::key_values(
            out,
            &[
                ("backup", self.backup.clone()),
                ("manifest", self.manifest.clone()),
                ("format", format),
                ("revision", heads(&self.revisions)),
                ("tables", self.tables.to_string()),
                ("rows", self.rows.to_string()),
                ("size", format!("{:.1} MB", self.bytes as f64 / 1e6)),
                ("verified", self.verified.clone()),
            ],
        )
    }
}

/// How deeply `backup verify` read an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Depth {
    /// Checksums and the table of contents; the full decode was done when it was written.
    TableOfContents,
    /// Checksums and a full decode: every table's rows and data digest.
    FullDecode,
}

/// `backup verify`: the archive is intact (a damaged one is an error, not a report).
#[derive(Debug, Serialize)]
pub struct BackupVerified {
    /// The archive.
    pub backup: String,
    /// Always true: a damaged archive fails the command.
    pub intact: bool,
    /// How many files matched their SHA-256.
    pub files: usize,
    /// How many tables the manifest lists.
    pub tables: usize,
    /// How many rows, all tables together.
    pub rows: u64,
    /// How deeply it was read.
    pub depth: Depth,
}

impl Report for BackupVerified {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let (path, files, tables, rows) = (&self.backup, self.files, self.tables, self.rows);
        match self.depth {
            Depth::FullDecode => writeln!(
                out,
                "{path}: intact ({files} file(s) match their SHA-256; {rows} row(s) in {tables} table(s) read back, every table's data digest matching)"
            ),
            Depth::TableOfContents => writeln!(
                out,
                "{path}: intact ({files} file(s) match their SHA-256, decoded in full when written; table of contents readable, with the {tables} table(s) of the manifest; --full decodes it again)"
            ),
        }
    }
}

/// `restore`: what was restored, how, and what was kept of the previous content.
#[derive(Debug, Serialize)]
pub struct Restore {
    /// The archive restored.
    pub backup: String,
    /// The database restored into, its password hidden.
    pub database: String,
    /// `swap` (restored aside, checked, swapped in) or `in_place` (one transaction).
    pub method: String,
    /// Why it was restored in place, when it was.
    pub in_place_reason: Option<String>,
    /// Parallel sessions of a swap.
    pub jobs: Option<u32>,
    /// The previous database, kept under this name (a swap with `--yes`).
    pub previous_database: Option<String>,
    /// The safety backup of the previous content, when one was taken.
    pub safety_backup: Option<String>,
    /// How many tables were restored.
    pub tables: usize,
    /// How many rows, all tables together.
    pub rows: u64,
    /// The revisions the database is at now.
    pub revisions: Vec<String>,
}

impl Report for Restore {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        match (self.method.as_str(), &self.in_place_reason, self.jobs) {
            ("swap", _, Some(jobs)) => writeln!(
                out,
                "restored with {jobs} parallel session(s) into a scratch database, checked, and swapped in atomically"
            )?,
            (_, Some(why), _) => writeln!(out, "restored in place in one transaction ({why})")?,
            _ => {}
        }
        if let Some(previous) = &self.previous_database {
            writeln!(
                out,
                "previous database kept as {previous} (DROP DATABASE \"{previous}\" once it is no longer needed)"
            )?;
        }
        if let Some(safety) = &self.safety_backup {
            writeln!(out, "safety backup of the previous content: {safety}")?;
        }
        writeln!(
            out,
            "restored {} into {}: {} row(s) in {} table(s), matching the manifest; the database is at {}",
            self.backup,
            self.database,
            self.rows,
            self.tables,
            heads(&self.revisions)
        )
    }
}

/// `seed`: the rows loaded, table by table.
#[derive(Debug, Serialize)]
pub struct Seeded {
    /// Each table and its rows, in load order.
    pub tables: Vec<SeededTable>,
    /// All rows together.
    pub rows: u64,
}

/// One table of `seed`.
#[derive(Debug, Serialize)]
pub struct SeededTable {
    /// The table.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
}

impl Report for Seeded {
    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let rows: Vec<Vec<String>> = self
            .tables
            .iter()
            .map(|t| vec![t.table.clone(), t.rows.to_string()])
            .collect();
        output::table(out, &["TABLE", "ROWS"], &rows)?;
        writeln!(out, "seeded {} row(s)", self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify() -> Verify {
        Verify {
            ok: false,
            checks: vec![
                VerifyCheck {
                    check: "connect".into(),
                    ok: true,
                    detail: "sqlite:/x.db".into(),
                },
                VerifyCheck {
                    check: "revision".into(),
                    ok: false,
                    detail: "base with 9 pending".into(),
                },
            ],
        }
    }

    #[test]
    fn text_and_json_of_one_report() {
        let mut text = Vec::new();
        emit(&mut text, &verify(), Format::Text).expect("write");
        insta::assert_snapshot!(String::from_utf8(text).expect("utf8"), @r"
        ok    connect   sqlite:/x.db
        FAIL  revision  base with 9 pending
        ");
        let mut json = Vec::new();
        emit(&mut json, &verify(), Format::Json).expect("write");
        insta::assert_snapshot!(String::from_utf8(json).expect("utf8"), @r#"{"ok":false,"checks":[{"check":"connect","ok":true,"detail":"sqlite:/x.db"},{"check":"revision","ok":false,"detail":"base with 9 pending"}]}"#);
    }

    #[test]
    fn a_list_is_a_json_array() {
        let list = List {
            revisions: vec![ListedRevision {
                revision: "aaaa".into(),
                down_revisions: Vec::new(),
                message: "first".into(),
                created: "2026-01-01".into(),
                applied: false,
                current: false,
                head: true,
                applied_at: None,
                duration_ms: None,
            }],
        };
        let mut json = Vec::new();
        emit(&mut json, &list, Format::Json).expect("write");
        assert!(json.starts_with(b"[{\"revision\":\"aaaa\""), "{json:?}");
    }
}
