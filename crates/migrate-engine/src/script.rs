//! The script between two points of the graph, and its text: one pure function for the dry run,
//! `generate-sql` and `run` ([`script`]), and one writer that frames each transaction as the
//! dialect's driver executes it ([`script_text`]).

use crate::{EngineError, Options, PreparedStep};
use migrate_core::driver::StateSql;
use migrate_core::render::{transaction_framing, TransactionFraming};
use migrate_core::{Dialect, Direction, Heads, ResolveError, RevisionGraph, Target};

/// Two points of the graph and the way between them, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Where the script starts (empty: base).
    pub from: Heads,
    /// Which way it goes.
    pub direction: Direction,
    /// Where it ends.
    pub to: Target,
}

impl Range {
    /// The range an operator's intent (`head`, `+1`, `base`, an id...) asks for from `current`;
    /// a downgrade to a revision that is not applied is refused.
    pub fn of_intent(
        graph: &RevisionGraph,
        intent: &crate::Intent,
        current: &Heads,
    ) -> Result<Range, EngineError> {
        let (direction, target) = match intent {
            crate::Intent::Upgrade(target) => (Direction::Up, target),
            crate::Intent::Downgrade(target) => (Direction::Down, target),
        };
        let to = graph.resolve(target, current)?;
        if let (Direction::Down, Target::Revisions(ids)) = (direction, &to) {
            let applied = graph.applied(current)?;
            if let Some(missing) = ids.iter().find(|id| !applied.contains(*id)) {
                return Err(ResolveError::NotAnAncestor {
                    target: missing.clone(),
                    current: current.iter().cloned().collect(),
                }
                .into());
            }
        }
        Ok(Range {
            from: current.clone(),
            direction,
            to,
        })
    }

    /// From `from` to `to`, whichever way leads there: down when every revision of `to` is
    /// applied at `from` (or `to` is base) and `to` is not `from` itself, up otherwise.
    pub fn between(graph: &RevisionGraph, from: Heads, to: Target) -> Result<Range, EngineError> {
        let applied = graph.applied(&from)?;
        let downward = match &to {
            Target::Base => !from.is_empty(),
            Target::Revisions(ids) => ids.iter().all(|id| applied.contains(id)) && *ids != from,
        };
        Ok(Range {
            from,
            direction: if downward {
                Direction::Down
            } else {
                Direction::Up
            },
            to,
        })
    }
}

/// What a run executes between the two points of `range`, in order, rendered for `sql`'s
/// dialect: the tool's tables first when `bootstrap` (and there is a step), then every step
/// with its bookkeeping. Pure: the dry run, `generate-sql` and `run` all plan through it.
pub fn script(
    graph: &RevisionGraph,
    sql: &dyn StateSql,
    options: &Options,
    range: &Range,
    bootstrap: bool,
) -> Result<Script, EngineError> {
    let steps = crate::prepare_range(graph, sql, options, range)?;
    Ok(Script {
        bootstrap: if bootstrap && !steps.is_empty() {
            sql.bootstrap_statements()
        } else {
            Vec::new()
        },
        steps,
        single_transaction: options.single_transaction,
        dialect: sql.dialect(),
    })
}

/// What a run would execute, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Statements creating the tool's tables first (empty when they exist).
    pub bootstrap: Vec<String>,
    /// The steps.
    pub steps: Vec<PreparedStep>,
    /// All steps in one transaction.
    pub single_transaction: bool,
    /// The dialect the statements are rendered for, whose transaction framing the text uses.
    pub dialect: Dialect,
}

/// How a script's text is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As the run executes it: each transaction framed as the dialect's driver frames it
    /// (SQLite: foreign keys off first, `BEGIN IMMEDIATE`, the foreign-key check before
    /// `COMMIT`).
    Transactions,
    /// For `psql -1`, which supplies the one transaction itself.
    Bare,
}

/// The script as text: a header of comment lines, then every statement in execution order.
pub fn script_text(header: &[String], script: &Script, framing: Framing) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("-- {line}\n"));
    }
    let frame = (framing == Framing::Transactions).then(|| transaction_framing(script.dialect));
    let whole = frame.is_some() && script.single_transaction;
    if let Some(f) = &frame {
        for sql in f.before {
            out.push_str(&format!("\n{sql};\n"));
        }
    }
    let each = if whole { None } else { frame.as_ref() };
    if let (true, Some(f)) = (whole, &frame) {
        out.push_str(&format!("\n{};\n", f.begin));
    }
    if !script.bootstrap.is_empty() {
        out.push_str("\n-- The tool's own tables\n");
        block(&mut out, &script.bootstrap, each);
    }
    for p in &script.steps {
        out.push_str(&format!("\n-- {}\n", step_title(p)));
        if !p.transactional {
            out.push_str("-- Runs outside a transaction: statement by statement, then its bookkeeping in one transaction.\n");
            block(&mut out, &p.statements, None);
            block(&mut out, &p.bookkeeping, frame.as_ref());
        } else {
            let all: Vec<String> = p.statements.iter().chain(&p.bookkeeping).cloned().collect();
            block(&mut out, &all, each);
        }
    }
    if let (true, Some(f)) = (whole, &frame) {
        out.push('\n');
        for check in f.checks {
            out.push_str(&format!("{check};\n"));
        }
        out.push_str(&format!("{};\n", f.commit));
    }
    out
}

/// The statements, in one transaction when `frame` is given.
fn block(out: &mut String, statements: &[String], frame: Option<&TransactionFraming>) {
    if let Some(f) = frame {
        out.push_str(&format!("{};\n", f.begin));
    }
    for s in statements {
        out.push_str(&format!("{s};\n"));
    }
    if let Some(f) = frame {
        for check in f.checks {
            out.push_str(&format!("{check};\n"));
        }
        out.push_str(&format!("{};\n", f.commit));
    }
}

/// `Upgrade 974799e38366 -> 68d314520251: message`.
pub fn step_title(p: &PreparedStep) -> String {
    let verb = match p.step.direction {
        Direction::Up => "Upgrade",
        Direction::Down => "Downgrade",
    };
    format!(
        "{verb} {} -> {}: {}",
        heads_text(&p.step.heads_before),
        heads_text(&p.step.heads_after),
        p.message
    )
}

/// Heads as text: `base` when empty, else ids joined by `, `.
pub fn heads_text(heads: &Heads) -> String {
    if heads.is_empty() {
        "base".to_owned()
    } else {
        heads.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}
