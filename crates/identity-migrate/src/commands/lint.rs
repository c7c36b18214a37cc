//! `lint`, and the lint that guards `migrate`, `migrate-to`, `rollback` and `revision`.
//!
//! The judgement is the core's ([`migrate_core::lint`]); this module picks what to judge (a
//! revision range, the pending revisions of a database, a SQL file), reads live table sizes
//! for the messages, applies the configured severities, prints, and turns an error that no
//! allowance covers into exit 6.
//!
//! `lint` with no range judges every revision of the chain and needs no database: the same
//! answer in CI, in code review and on a laptop. `lint --pending` judges what `migrate` would
//! run on the configured database, with its live sizes; that is also what `migrate` does
//! before it touches anything.

use crate::args::{DialectArg, LintArgs, MigrateArgs, RuleArgs};
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::Database;
use migrate_core::driver::DriverError;
use migrate_core::lint::{self, Finding, LintContext, Severity};
use migrate_core::render::schema_at;
use migrate_core::schema::Schema;
use migrate_core::{Dialect, Direction, Heads, Op, RevisionGraph, Step, Target};
use migrate_engine::{EngineError, Intent};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// What a rule's findings become, by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Reported with this severity.
    Severity(Severity),
    /// Not reported.
    Off,
}

/// Rule severities as configured: identity-migrate.toml's `[lint.rules]`, then `--rule`.
#[derive(Debug, Clone, Default)]
pub struct Levels(BTreeMap<String, Level>);

impl Levels {
    /// Reads the file's table and the flags (flags win); an unknown rule or level is bad input.
    pub fn resolve(cfg: &Resolved, flags: &RuleArgs) -> Result<Levels, CliError> {
        let mut levels = BTreeMap::new();
        let from_file = cfg.lint_rules.iter().map(|(id, level)| {
            (
                id.clone(),
                level.clone(),
                "identity-migrate.toml [lint.rules]",
            )
        });
        let mut from_flags = Vec::new();
        for given in &flags.rule {
            let (id, level) = given.split_once('=').ok_or_else(|| {
                CliError::Config(format!(
                    "--rule {given:?} is not ID=LEVEL (for example --rule type-change-rewrite=warning)"
                ))
            })?;
            from_flags.push((id.trim().to_owned(), level.trim().to_owned(), "--rule"));
        }
        for (id, level, source) in from_file.chain(from_flags) {
            if lint::rule(&id).is_none() && id != lint::UNUSED_ALLOWANCE {
                let known: Vec<&str> = lint::rules().iter().map(|r| r.id).collect();
                return Err(CliError::Config(format!(
                    "{source} names {id:?}, which is no lint rule; the rules are: {}",
                    known.join(", ")
                )));
            }
            let level = match level.as_str() {
                "error" => Level::Severity(Severity::Error),
                "warning" => Level::Severity(Severity::Warning),
                "info" => Level::Severity(Severity::Info),
                "off" => Level::Off,
                other => {
                    return Err(CliError::Config(format!(
                        "{source} sets {id} to {other:?}: use error, warning, info or off"
                    )))
                }
            };
            levels.insert(id, level);
        }
        Ok(Levels(levels))
    }

    /// The findings with their configured severities; those turned off are gone.
    pub fn apply(&self, findings: Vec<Finding>) -> Vec<Finding> {
        findings
            .into_iter()
            .filter_map(|mut f| match self.0.get(f.rule) {
                Some(Level::Off) => None,
                Some(Level::Severity(s)) => {
                    f.severity = *s;
                    Some(f)
                }
                None => Some(f),
            })
            .collect()
    }
}

/// The revisions a range names, as the plan that would apply them, and where it starts.
pub fn range_steps(graph: &RevisionGraph, range: &str) -> Result<(Heads, Vec<Step>), CliError> {
    let resolve = |rev: &str| -> Result<Heads, CliError> {
        match graph
            .resolve(rev, &Heads::new())
            .map_err(EngineError::from)?
        {
            Target::Base => Ok(Heads::new()),
            Target::Revisions(ids) => Ok(ids),
        }
    };
    let (from, to) = match range.split_once("..") {
        Some((from, to)) => {
            let from = if from.is_empty() {
                Heads::new()
            } else {
                resolve(from)?
            };
            let to = if to.is_empty() { "heads" } else { to };
            (from, resolve(to)?)
        }
        None => {
            let id = graph.resolve_id(range).map_err(EngineError::from)?;
            let revision = graph.get(&id).expect("resolved ids are in the graph");
            let from: Heads = revision.down.iter().cloned().collect();
            (from, [id].into_iter().collect())
        }
    };
    let applied_to = graph.applied(&to).map_err(EngineError::from)?;
    if from.iter().any(|id| !applied_to.contains(id)) {
        return Err(CliError::Config(format!(
            "range {range:?}: its start is not an ancestor of its end (write OLDER..NEWER)"
        )));
    }
    let steps = graph
        .plan_upgrade(&from, &Target::Revisions(to))
        .map_err(EngineError::from)?;
    Ok((from, steps))
}

/// Lints the steps of a plan that starts at `current`, each against the schema the steps
/// before it leave.
pub fn lint_steps(
    graph: &RevisionGraph,
    current: &Heads,
    steps: &[Step],
    ctx: &LintContext,
) -> Result<Vec<Finding>, CliError> {
    let applied = graph.applied(current).map_err(EngineError::from)?;
    let mut schema = schema_at(graph, &applied).map_err(|e| CliError::Config(e.to_string()))?;
    let mut out = Vec::new();
    for step in steps {
        let Some(revision) = graph.get(&step.revision) else {
            // A withdrawn series' revision: not this graph's to judge; what follows it would be
            // judged against a wrong schema, so stop here.
            log::debug!("{} is not in the chain: not linted", step.revision);
            break;
        };
        out.extend(
            lint::lint_revision(revision, step.direction, &mut schema, ctx)
                .map_err(|e| CliError::Config(e.to_string()))?,
        );
    }
    Ok(out)
}

/// What a connected database tells lint: its current revisions, and on PostgreSQL the sizes and
/// version that go into the context.
fn read_database(
    cfg: &Resolved,
    database: &Database,
    ctx: &mut LintContext,
    created_later: bool,
) -> Result<Heads, CliError> {
    if database.is_missing_file() {
        return Ok(Heads::new());
    }
    let mut connected = match database.connect(cfg, false) {
        Ok(c) => c,
        // `migrate --create-database` creates it later: it is empty now. Anywhere else a
        // database that is not there is a failure, never "no revision yet".
        Err(CliError::Driver(DriverError::NoSuchDatabase(_))) if created_later => {
            return Ok(Heads::new())
        }
        Err(e) => return Err(e),
    };
    let heads = connected.driver().read_heads()?;
    connected.read_lint_facts(&cfg.schema, ctx)?;
    Ok(heads)
}

/// The dialect to judge for: the flag, else the configured database's, else the default
/// context's (PostgreSQL, the strictest).
fn dialect(cfg: &Resolved, flag: Option<DialectArg>) -> Result<Dialect, CliError> {
    Ok(match flag {
        Some(arg) => arg.into(),
        None if cfg.database_url.is_some() => Database::resolve(cfg)?.dialect(),
        None => LintContext::default().dialect,
    })
}

/// Whether `target` names a SQL script rather than revisions.
fn is_script(target: &str) -> bool {
    target == "-"
        || target.to_ascii_lowercase().ends_with(".sql")
        || std::path::Path::new(target).is_file()
}

/// `identity-migrate lint`.
pub fn run(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    args: &LintArgs,
) -> Result<(), CliError> {
    let levels = Levels::resolve(cfg, &args.rules)?;
    let mut ctx = LintContext::for_dialect(dialect(cfg, args.dialect)?);
    let (what, findings) = match args.target.as_deref() {
        Some(target) if is_script(target) => {
            let text = read_script(target)?;
            // A script is judged against the head of the chain: the schema it will most likely
            // meet (a table it does not know is taken to exist).
            let all = graph.revisions().iter().map(|r| r.id.clone()).collect();
            let head = schema_at(graph, &all).map_err(|e| CliError::Config(e.to_string()))?;
            let name = if target == "-" { "stdin" } else { target };
            (name.to_owned(), lint::sql::lint_sql(&text, &head, &ctx))
        }
        Some(range) => {
            let (from, steps) = range_steps(graph, range)?;
            (
                format!("{} revision(s) of {range}", steps.len()),
                lint_steps(graph, &from, &steps, &ctx)?,
            )
        }
        None if args.pending => {
            let database = Database::resolve(cfg)?;
            let current = read_database(cfg, &database, &mut ctx, false)?;
            let target = graph
                .resolve("heads", &current)
                .map_err(EngineError::from)?;
            let steps = graph
                .plan_upgrade(&current, &target)
                .map_err(EngineError::from)?;
            (
                format!(
                    "{} pending revision(s) of {}",
                    steps.len(),
                    database.redacted()
                ),
                lint_steps(graph, &current, &steps, &ctx)?,
            )
        }
        None => {
            let steps = graph
                .plan_upgrade(
                    &Heads::new(),
                    &Target::Revisions(graph.heads().iter().map(|h| (*h).to_owned()).collect()),
                )
                .map_err(EngineError::from)?;
            (
                format!("{} revision(s), the whole chain", steps.len()),
                lint_steps(graph, &Heads::new(), &steps, &ctx)?,
            )
        }
    };
    let findings = levels.apply(findings);
    print(out, &what, &findings, args.json)?;
    refusal(&findings, "lint")
}

fn read_script(target: &str) -> Result<String, CliError> {
    if target == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Config(format!("cannot read the script from stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(target)
        .map_err(|e| CliError::Config(format!("cannot read {target}: {e}")))
}

/// Exit 6 when an error has no allowance.
fn refusal(findings: &[Finding], what: &str) -> Result<(), CliError> {
    let blocking: Vec<&Finding> = findings.iter().filter(|f| f.blocks()).collect();
    match blocking.first() {
        None => Ok(()),
        Some(first) => Err(CliError::Lint(format!(
            "{what}: {} error(s) without an allowance, first {}[{}] {}{}: {}",
            blocking.len(),
            first.severity,
            first.rule,
            first
                .location
                .as_ref()
                .and_then(|l| l.revision.as_deref())
                .map_or_else(String::new, |r| format!("in {r} on ")),
            first.object,
            first.message
        ))),
    }
}

/// Prints findings as text (one block each, then a summary line) or as one JSON document.
pub fn print(
    out: &mut dyn Write,
    what: &str,
    findings: &[Finding],
    json: bool,
) -> Result<(), CliError> {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let blocking = findings.iter().filter(|f| f.blocks()).count();
    if json {
        let value = json!({
            "linted": what,
            "findings": findings.iter().map(finding_json).collect::<Vec<_>>(),
            "errors": count(Severity::Error),
            "warnings": count(Severity::Warning),
            "infos": count(Severity::Info),
            "blocking": blocking,
        });
        return writeln!(out, "{value}").map_err(io_error);
    }
    for f in findings {
        writeln!(out, "{f}").map_err(io_error)?;
    }
    writeln!(
        out,
        "linted {what}: {} error(s) ({blocking} without an allowance), {} warning(s), {} info",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    )
    .map_err(io_error)
}

fn finding_json(f: &Finding) -> serde_json::Value {
    let location = f.location.as_ref();
    json!({
        "rule": f.rule,
        "severity": f.severity.to_string(),
        "revision": location.and_then(|l| l.revision.clone()),
        "direction": location.filter(|l| l.revision.is_some()).map(|l| l.direction.as_str()),
        "op": location.filter(|l| l.revision.is_some()).map(|l| l.index + 1),
        "statement": location.filter(|l| l.revision.is_none()).map(|l| l.index + 1),
        "object": f.object,
        "message": f.message,
        "help": f.help,
        "allowed": f.allowed,
        "blocks": f.blocks(),
    })
}

/// Before `migrate`, `migrate-to` and `rollback` touch anything: lint what they would run,
/// with the live sizes, and refuse (exit 6) an error no allowance covers unless
/// `--allow-lint-errors`. A dry run only reports.
pub fn guard(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    intent: &Intent,
    run: &MigrateArgs,
) -> Result<(), CliError> {
    let levels = Levels::resolve(cfg, &run.rules)?;
    let database = Database::resolve(cfg)?;
    let mut ctx = LintContext::for_dialect(database.dialect());
    if run.single_transaction {
        ctx.transaction = lint::TransactionMode::Single;
    }
    let current = read_database(cfg, &database, &mut ctx, run.create_database)?;
    let steps = match plan(graph, intent, &current) {
        Ok(steps) => steps,
        Err(e) => {
            // The engine reports a plan it cannot make, with its own wording.
            log::debug!("lint before running: no plan ({e})");
            return Ok(());
        }
    };
    let findings = levels.apply(lint_steps(graph, &current, &steps, &ctx)?);
    for f in &findings {
        let text = f.to_string().replace('\n', " ");
        match f.severity {
            _ if f.allowed.is_some() => log::debug!("lint: {text}"),
            Severity::Error => {}
            Severity::Warning => log::warn!("lint: {text}"),
            Severity::Info => log::info!("lint: {text}"),
        }
    }
    let blocking: Vec<&Finding> = findings.iter().filter(|f| f.blocks()).collect();
    if blocking.is_empty() {
        return Ok(());
    }
    if run.dry_run || run.allow_lint_errors {
        for f in &blocking {
            log::warn!(
                "lint: {} ({})",
                f.to_string().replace('\n', " "),
                if run.dry_run {
                    "migrate would refuse this"
                } else {
                    "run anyway: --allow-lint-errors"
                }
            );
        }
        return Ok(());
    }
    for f in &blocking {
        writeln!(out, "{f}").map_err(io_error)?;
    }
    let first = blocking[0];
    Err(CliError::Lint(format!(
        "refusing to run: {} lint error(s) without an allowance, first {}[{}] in {}: {}: {}; \
         nothing was changed. Make the revision safe, add .allow(\"{}\", \"why\") to it, or pass \
         --allow-lint-errors",
        blocking.len(),
        first.severity,
        first.rule,
        first
            .location
            .as_ref()
            .and_then(|l| l.revision.as_deref())
            .unwrap_or("?"),
        first.object,
        first.message,
        first.rule,
    )))
}

/// The steps the intent means from `current`, as the engine would plan them.
fn plan(graph: &RevisionGraph, intent: &Intent, current: &Heads) -> Result<Vec<Step>, CliError> {
    Ok(match intent {
        Intent::Upgrade(target) => {
            let target = graph.resolve(target, current).map_err(EngineError::from)?;
            graph
                .plan_upgrade(current, &target)
                .map_err(EngineError::from)?
        }
        Intent::Downgrade(target) => {
            let target = graph.resolve(target, current).map_err(EngineError::from)?;
            graph
                .plan_downgrade(current, &target)
                .map_err(EngineError::from)?
        }
    })
}

/// After `revision --autogenerate` wrote a revision: what lint finds in its upgrade, judged
/// against the head it follows. A finding is printed, never refused: the file is the
/// developer's to edit.
pub fn report_new_revision(
    out: &mut dyn Write,
    id: &str,
    head: &Schema,
    upgrade: &[Op],
) -> Result<(), CliError> {
    let mut schema = head.clone();
    let mut ctx = LintContext::postgres();
    let findings = match lint::lint_ops(upgrade, &mut schema, &mut ctx) {
        Ok(findings) => findings,
        Err((op, e)) => {
            log::warn!("lint of the new revision stopped at op {}: {e}", op + 1);
            return Ok(());
        }
    };
    for mut f in findings.iter().cloned() {
        if let Some(l) = &mut f.location {
            l.revision = Some(id.to_owned());
            l.direction = Direction::Up;
        }
        writeln!(out, "{f}").map_err(io_error)?;
    }
    let errors = findings.iter().filter(|f| f.blocks()).count();
    writeln!(
        out,
        "lint: {} finding(s), {errors} error(s){}",
        findings.len(),
        if errors > 0 {
            ": `migrate` refuses them until the revision is made safe or says .allow(\"rule-id\", \"why\")"
        } else {
            ""
        }
    )
    .map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_core::schema::{Column, ColumnType, Table};
    use migrate_core::{ColumnChange, Revision};
    use migrate_engine::{Engine, Options, RunIdentity};
    use migrate_testkit::TestDb;

    /// `t (id, n integer)`, then a revision that makes `n` a bigint: a rewrite of `t`.
    fn graph() -> RevisionGraph {
        RevisionGraph::new(vec![
            Revision::new("a00000000001", &[], "create t").upgrade(vec![Op::CreateTable(
                Table::new("t")
                    .column(Column::new("id", ColumnType::Integer).not_null())
                    .column(Column::new("n", ColumnType::Integer))
                    .primary_key("t_pkey", &["id"]),
            )]),
            Revision::new("a00000000002", &["a00000000001"], "n becomes bigint").upgrade(vec![
                Op::AlterColumn {
                    table: "t".into(),
                    column: "n".into(),
                    change: ColumnChange {
                        ty: Some((ColumnType::BigInt, None)),
                        nullable: None,
                        default: None,
                    },
                },
            ]),
        ])
        .expect("a valid graph")
    }

    fn cfg(db: &TestDb) -> Resolved {
        Resolved {
            database_url: Some(db.url()),
            source: "test",
            schema: "public".to_owned(),
            lock_wait: std::time::Duration::from_secs(10),
            lock_timeout: std::time::Duration::from_secs(5),
            busy_timeout: std::time::Duration::from_secs(5),
            lock_budget: std::time::Duration::from_secs(60),
            statement_timeout: None,
            backup_dir: std::path::PathBuf::from("."),
            lint_rules: BTreeMap::new(),
        }
    }

    fn run_args() -> MigrateArgs {
        MigrateArgs {
            dry_run: false,
            single_transaction: false,
            accept_changed: false,
            create_database: false,
            backup: false,
            allow_lint_errors: false,
            json: false,
            rules: RuleArgs::default(),
        }
    }

    fn version(db: &TestDb) -> String {
        db.client()
            .query_one("SELECT version_num FROM alembic_version", &[])
            .expect("one version")
            .get(0)
    }

    #[test]
    fn migrate_refuses_a_rewrite_with_the_live_size_before_touching_anything() {
        let db = TestDb::new();
        let cfg = cfg(&db);
        let graph = graph();
        let driver = Database::resolve(&cfg)
            .and_then(|d| d.connect(&cfg, false))
            .expect("connects")
            .into_driver();
        let identity = RunIdentity {
            os_user: "test".into(),
            host: "test".into(),
            tool_version: "0".into(),
        };
        Engine::new(driver, &graph, Options::new(identity))
            .run(&Intent::Upgrade("a00000000001".into()), &mut |_| {})
            .expect("the first revision runs");
        db.client()
            .batch_execute("INSERT INTO t SELECT g, g FROM generate_series(1, 20000) g; ANALYZE t")
            .expect("rows");

        let mut out = Vec::new();
        let intent = Intent::Upgrade("head".into());
        let err = guard(&mut out, &cfg, &graph, &intent, &run_args()).expect_err("refused");
        assert_eq!(err.exit_code(), 6);
        let line = err.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(line.contains("type-change-rewrite"), "{line}");
        assert!(
            line.contains("rewrites t (20 k rows, ") && line.contains("under ACCESS EXCLUSIVE"),
            "the live size is in the message: {line}"
        );
        assert!(line.contains("--allow-lint-errors"), "{line}");
        let shown = String::from_utf8(out).expect("utf-8");
        assert!(
            shown.contains("error[type-change-rewrite] a00000000002 up op 1"),
            "{shown}"
        );
        assert_eq!(version(&db), "a00000000001", "nothing changed");

        // A dry run only reports; the override runs; a severity turned down lets it pass.
        let dry = MigrateArgs {
            dry_run: true,
            ..run_args()
        };
        guard(&mut Vec::new(), &cfg, &graph, &intent, &dry).expect("a dry run is not refused");
        let forced = MigrateArgs {
            allow_lint_errors: true,
            ..run_args()
        };
        guard(&mut Vec::new(), &cfg, &graph, &intent, &forced).expect("--allow-lint-errors");
        let lowered = MigrateArgs {
            rules: RuleArgs {
                rule: vec!["type-change-rewrite=warning".into()],
            },
            ..run_args()
        };
        guard(&mut Vec::new(), &cfg, &graph, &intent, &lowered).expect("a warning passes");
        let mut from_file = cfg.clone();
        from_file
            .lint_rules
            .insert("type-change-rewrite".into(), "off".into());
        guard(&mut Vec::new(), &from_file, &graph, &intent, &run_args()).expect("off passes");
    }

    #[test]
    fn levels_refuse_unknown_rules_and_levels() {
        let cfg = Resolved {
            database_url: None,
            ..cfg_without_db()
        };
        let flags = |s: &str| RuleArgs {
            rule: vec![s.to_owned()],
        };
        for bad in [
            "no-such-rule=off",
            "type-change-rewrite=fatal",
            "type-change-rewrite",
        ] {
            let err = Levels::resolve(&cfg, &flags(bad)).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
        }
        let mut file = cfg.clone();
        file.lint_rules.insert("typo-rule".into(), "error".into());
        let err = Levels::resolve(&file, &RuleArgs::default()).expect_err("typo");
        assert!(err.to_string().contains("[lint.rules]"), "{err}");
        // The flag beats the file.
        file.lint_rules.clear();
        file.lint_rules.insert("unknown-sql".into(), "off".into());
        let levels = Levels::resolve(&file, &flags("unknown-sql=error")).expect("valid");
        assert_eq!(
            levels.0.get("unknown-sql"),
            Some(&Level::Severity(Severity::Error))
        );
    }

    fn cfg_without_db() -> Resolved {
        Resolved {
            database_url: None,
            source: "test",
            schema: "public".to_owned(),
            lock_wait: std::time::Duration::from_secs(1),
            lock_timeout: std::time::Duration::from_secs(1),
            busy_timeout: std::time::Duration::from_secs(1),
            lock_budget: std::time::Duration::from_secs(60),
            statement_timeout: None,
            backup_dir: std::path::PathBuf::from("."),
            lint_rules: BTreeMap::new(),
        }
    }

    #[test]
    fn ranges_name_the_revisions_migrate_would_run() {
        let graph = identity_schema::graph();
        let ids: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
        let steps = |range: &str| -> Vec<String> {
            range_steps(&graph, range)
                .expect(range)
                .1
                .into_iter()
                .map(|s| s.revision)
                .collect()
        };
        assert_eq!(steps(&ids[1]), vec![ids[1].clone()]);
        assert_eq!(steps(&format!("..{}", ids[1])), ids[..2].to_vec());
        assert_eq!(
            steps(&format!("{}..{}", ids[0], ids[2])),
            ids[1..3].to_vec()
        );
        assert_eq!(
            steps(&format!("{}..", ids[ids.len() - 2])),
            ids[ids.len() - 1..].to_vec()
        );
        assert!(range_steps(&graph, &format!("{}..{}", ids[2], ids[0])).is_err());
        assert!(range_steps(&graph, "nonsense").is_err());
    }
}
