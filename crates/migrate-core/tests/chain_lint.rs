//! Every revision of the identity chain lints clean, or carries an allowance with a reason for
//! each finding (issue 12, "Done means"): on PostgreSQL, the production database, and on SQLite.

use migrate_core::lint::{self, LintContext, Severity};
use migrate_core::{Dialect, RevisionGraph};

#[test]
fn every_finding_on_the_identity_chain_is_allowed_with_a_reason() {
    let revisions = identity_schema::revisions::all();
    for r in &revisions {
        lint::check_allowances(r).expect("every allowance names a rule and gives a reason");
    }
    let graph = RevisionGraph::new(revisions).expect("the graph is valid");
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let findings = lint::lint_graph(&graph, &LintContext::for_dialect(dialect)).expect("lints");
        let unexcused: Vec<String> = findings
            .iter()
            .filter(|f| f.allowed.is_none() && f.severity > Severity::Info)
            .map(ToString::to_string)
            .collect();
        assert!(
            unexcused.is_empty(),
            "{dialect:?}: findings without an allowance:\n{}",
            unexcused.join("\n")
        );
        assert!(
            findings.iter().all(|f| !f.blocks()),
            "nothing blocks `migrate`"
        );
    }
}

#[test]
fn an_allowance_is_no_blanket_a_new_danger_in_the_chain_still_blocks() {
    // The same chain with one allowance taken away: lint blocks again, so the allowances above
    // excuse exactly what they name.
    let mut revisions = identity_schema::revisions::all();
    // (fbcbc6afff27 changes its type online since branch `online`: the renames of
    // 3ffba08b0d3f are the chain's allowed errors now.)
    let aligned = revisions
        .iter_mut()
        .find(|r| r.id == "3ffba08b0d3f")
        .expect("the revision that renames the models' columns");
    aligned
        .allowances
        .retain(|a| a.rule != "rename-breaks-release");
    let graph = RevisionGraph::new(revisions).expect("the graph is valid");
    let findings = lint::lint_graph(&graph, &LintContext::postgres()).expect("lints");
    let blocking: Vec<_> = findings.iter().filter(|f| f.blocks()).collect();
    assert!(!blocking.is_empty());
    assert!(
        blocking.iter().all(|f| f.rule == "rename-breaks-release"),
        "{blocking:?}"
    );
}

#[test]
fn every_finding_of_the_identity_chain_rolled_back_is_allowed_with_a_reason() {
    // `rollback` is judged like `migrate`: each downgrade against the schema it meets, from
    // head down to base.
    let graph = RevisionGraph::new(identity_schema::revisions::all()).expect("the graph is valid");
    let all = graph.revisions().iter().map(|r| r.id.clone()).collect();
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let mut schema = migrate_core::render::schema_at(&graph, &all).expect("head");
        let ctx = LintContext::for_dialect(dialect);
        let mut unexcused = Vec::new();
        for r in graph.revisions().iter().rev() {
            let findings = lint::lint_revision(r, migrate_core::Direction::Down, &mut schema, &ctx)
                .expect("lints");
            unexcused.extend(
                findings
                    .iter()
                    .filter(|f| f.allowed.is_none() && f.severity > Severity::Info)
                    .map(|f| format!("{} {}", f.rule, f)),
            );
        }
        assert!(
            unexcused.is_empty(),
            "{dialect:?}: downgrade findings without an allowance:\n{}",
            unexcused.join("\n")
        );
    }
}
