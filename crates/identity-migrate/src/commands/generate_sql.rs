//! `generate-sql`: the script between two points, for review.

use super::migrate::exact_revision;
use super::{identity, io_error};
use crate::args::{DialectArg, GenerateSqlArgs};
use crate::config::Resolved;
use crate::error::CliError;
use crate::open::Database;
use crate::output::{self, heads_text, Framing};
use migrate_core::{Dialect, Heads, RevisionGraph, Target};
use migrate_engine::{EngineError, Intent, Options};
use std::io::Write;

pub(super) fn generate_sql(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    args: &GenerateSqlArgs,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let dialect = match args.dialect {
        Some(DialectArg::Postgres) => Dialect::Postgres,
        Some(DialectArg::Sqlite) => Dialect::Sqlite,
        None => database.dialect(),
    };
    exact_revision(&args.to, "--to")?;
    if let Some(rev) = &args.from {
        exact_revision(rev, "--from")?;
    }
    let from: Heads = match &args.from {
        Some(rev) => match graph
            .resolve(rev, &Heads::new())
            .map_err(EngineError::from)?
        {
            Target::Base => Heads::new(),
            Target::Revisions(ids) => ids,
        },
        None => current_or_base(cfg, graph, &database)?,
    };
    let target = graph.resolve(&args.to, &from).map_err(EngineError::from)?;
    let applied = graph.applied(&from).map_err(EngineError::from)?;
    let downward = match &target {
        Target::Base => !from.is_empty(),
        Target::Revisions(ids) => ids.iter().all(|id| applied.contains(id)) && ids != &from,
    };
    let to_text = match &target {
        Target::Base => "base".to_owned(),
        Target::Revisions(ids) => heads_text(ids),
    };
    // Resolved ids, so a relative `--to` means the same in the plan as in the header; several
    // ids only come from `heads`.
    let to_arg = match &target {
        Target::Base => "base".to_owned(),
        Target::Revisions(ids) if ids.len() > 1 => "heads".to_owned(),
        Target::Revisions(ids) => heads_text(ids),
    };
    let intent = if downward {
        Intent::Downgrade(to_arg)
    } else {
        Intent::Upgrade(to_arg)
    };
    let state_sql = crate::open::state_sql(dialect);
    let steps =
        migrate_engine::prepare(graph, state_sql, &Options::new(identity()), &intent, &from)?;
    // A range with a revision that builds indexes concurrently cannot be one transaction: the
    // script then frames each revision as `migrate` runs it.
    let one_transaction = steps.iter().all(|s| s.transactional);
    let script = migrate_engine::Script {
        bootstrap: if from.is_empty() {
            state_sql.bootstrap_statements()
        } else {
            Vec::new()
        },
        steps,
        single_transaction: one_transaction,
    };
    let (dialect_name, apply, framing) = if dialect == Dialect::Sqlite {
        (
            "SQLite",
            "Apply with: sqlite3 -bail DATABASE < FILE (the script is one transaction: all or nothing)",
            Framing::SqliteShell,
        )
    } else if one_transaction {
        (
            "PostgreSQL",
            "Apply with: psql -v ON_ERROR_STOP=1 -1 -f FILE (one transaction: all or nothing)",
            Framing::Bare,
        )
    } else {
        (
            "PostgreSQL",
            "Apply with: psql -v ON_ERROR_STOP=1 -f FILE (each revision in its own transaction, as `migrate` runs them; a concurrent index build outside any)",
            Framing::Transactions,
        )
    };
    let mut header = vec![
        "identity-migrate generate-sql".to_owned(),
        format!(
            "Range: {} -> {to_text} ({} step(s)), {dialect_name}",
            heads_text(&from),
            script.steps.len()
        ),
        apply.to_owned(),
    ];
    if script.steps.iter().any(|s| !s.transactional) {
        header.push(
            "WARNING: some statements cannot run in a transaction: apply without -1".to_owned(),
        );
    }
    match &args.output {
        Some(path) => {
            let mut buffer = Vec::new();
            output::script(&mut buffer, &header, &script, framing).map_err(io_error)?;
            std::fs::write(path, buffer)
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            log::info!("wrote {} ({} step(s))", path.display(), script.steps.len());
            Ok(())
        }
        None => output::script(out, &header, &script, framing).map_err(io_error),
    }
}

/// The database's current revision when it can be reached, else base (said on stderr).
pub(super) fn current_or_base(
    cfg: &Resolved,
    graph: &RevisionGraph,
    database: &Database,
) -> Result<Heads, CliError> {
    if database.is_missing_file() {
        log::info!(
            "{} does not exist yet: generating from base",
            database.redacted()
        );
        return Ok(Heads::new());
    }
    match database.connect(cfg, false) {
        Ok(mut connected) => {
            let heads = connected.driver().read_heads()?;
            identity_schema::withdrawal()
                .applied(graph, &heads)
                .map_err(EngineError::from)?;
            log::info!(
                "generating from the current revision of {}: {}",
                database.redacted(),
                heads_text(&heads)
            );
            Ok(heads)
        }
        // A connection that fails is a failure, as for every other reading command: a script
        // "from base" for a database that is not at base would be dangerous. `--from base`
        // asks for that script explicitly.
        Err(CliError::Engine(EngineError::Driver(e))) => Err(CliError::Io(format!(
            "{e} (to generate the script without a connection, pass --from REV, or --from base for the whole chain)"
        ))),
        Err(e) => Err(e),
    }
}
