//! `generate-sql`: the script between two points, for review.

use super::migrate::exact_revision;
use super::session::identity;
use crate::args::GenerateSqlArgs;
use crate::config::Resolved;
use crate::error::io_error;
use crate::error::CliError;
use crate::open::Database;
use crate::output::{heads_text, Framing};
use crate::report::{self, Format};
use migrate_core::{Dialect, Heads, RevisionGraph, Target};
use migrate_engine::{EngineError, Options, Range};
use std::io::Write;

pub(super) fn generate_sql(
    out: &mut dyn Write,
    cfg: &Resolved,
    graph: &RevisionGraph,
    args: &GenerateSqlArgs,
) -> Result<(), CliError> {
    let database = Database::resolve(cfg)?;
    let dialect = args
        .dialect
        .map_or_else(|| database.dialect(), Dialect::from);
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
    // The resolved points go to the engine's one script function, as the dry run's do.
    let range = Range::between(graph, from.clone(), target)?;
    let state_sql = crate::open::state_sql(dialect);
    let mut script = migrate_engine::script(
        graph,
        state_sql,
        &Options::new(identity()),
        &range,
        from.is_empty(),
    )?;
    // A range with a revision that builds indexes concurrently cannot be one transaction: the
    // script then frames each revision as `migrate` runs it.
    let one_transaction = script.steps.iter().all(|s| s.transactional);
    script.single_transaction = one_transaction;
    let shell = dialect.shell_application(one_transaction);
    let framing = if shell.framed {
        Framing::Transactions
    } else {
        Framing::Bare
    };
    let to = match &range.to {
        Target::Base => Vec::new(),
        Target::Revisions(ids) => ids.iter().cloned().collect(),
    };
    let report = report::GeneratedSql {
        dialect: dialect.to_string(),
        from: from.iter().cloned().collect(),
        to,
        apply_with: shell.apply_with.to_owned(),
        outside_transaction: script.steps.iter().any(|s| !s.transactional),
        steps: script.steps.iter().map(report::PlannedStep::of).collect(),
        script,
        framing,
    };
    match &args.output {
        Some(path) => {
            let mut buffer = Vec::new();
            report::emit(&mut buffer, &report, Format::Text).map_err(io_error)?;
            std::fs::write(path, buffer)
                .map_err(|e| CliError::Io(format!("cannot write {}: {e}", path.display())))?;
            log::info!("wrote {} ({} step(s))", path.display(), report.steps.len());
            Ok(())
        }
        None => report::emit(out, &report, Format::Text).map_err(io_error),
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
        Err(CliError::Driver(e)) => Err(CliError::Io(format!(
            "{e} (to generate the script without a connection, pass --from REV, or --from base for the whole chain)"
        ))),
        Err(e) => Err(e),
    }
}
