//! Branches and merges on a real database: `alembic_version` holds one row per head, as
//! Alembic keeps it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::*;
use migrate_core::{Direction, ResolveError, RevisionGraph};
use migrate_engine::EngineError;
use migrate_testkit::TestDb;

const ROOT: &str = "e0000000000a";
const LEFT: &str = "e1000000000b";
const RIGHT: &str = "e2000000000c";
const MERGE: &str = "e3000000000d";

/// root -> left, root -> right, (left, right) -> merge; each creates its own table.
fn diamond() -> RevisionGraph {
    graph(vec![
        table_revision(ROOT, &[], "t_root"),
        table_revision(LEFT, &[ROOT], "t_left"),
        table_revision(RIGHT, &[ROOT], "t_right"),
        table_revision(MERGE, &[LEFT, RIGHT], "t_merge"),
    ])
}

fn tables(db: &TestDb) -> Vec<String> {
    texts(
        db,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename LIKE 't\\_%' ORDER BY tablename",
    )
}

#[test]
fn a_branch_and_a_merge_apply_and_roll_back_with_one_version_row_per_head() {
    let db = TestDb::new();
    let graph = diamond();
    let mut engine = engine(&db, &graph);

    // One branch first: the other is still pending.
    let reports = run(&mut engine, &up(LEFT)).unwrap();
    assert_eq!(report_ids(&reports), [ROOT, LEFT]);
    assert_eq!(versions(&db), [LEFT]);
    // Then the other branch: two heads, two rows.
    let reports = run(&mut engine, &up(RIGHT)).unwrap();
    assert_eq!(report_ids(&reports), [RIGHT]);
    assert_eq!(reports[0].step.heads_before, heads(&[LEFT]));
    assert_eq!(versions(&db), [LEFT, RIGHT]);
    // A relative step needs one current revision.
    assert!(matches!(
        run(&mut engine, &down("-1")),
        Err(EngineError::Resolve(ResolveError::CurrentNotSingle(_)))
    ));
    // `heads` applies the merge: one row again.
    let reports = run(&mut engine, &up("heads")).unwrap();
    assert_eq!(report_ids(&reports), [MERGE]);
    assert_eq!(reports[0].step.heads_before, heads(&[LEFT, RIGHT]));
    assert_eq!(versions(&db), [MERGE]);
    assert_eq!(tables(&db), ["t_left", "t_merge", "t_right", "t_root"]);

    // Rolling back to one branch parent undoes the merge only: two rows.
    let reports = run(&mut engine, &down(LEFT)).unwrap();
    assert_eq!(report_ids(&reports), [MERGE]);
    assert_eq!(reports[0].step.direction, Direction::Down);
    assert_eq!(versions(&db), [LEFT, RIGHT]);
    assert_eq!(tables(&db), ["t_left", "t_right", "t_root"]);
    let status = engine.status().unwrap();
    assert_eq!((status.pending, status.at_head), (1, false));

    // `heads` again: the merge is back, one row.
    let reports = run(&mut engine, &up("heads")).unwrap();
    assert_eq!(report_ids(&reports), [MERGE]);
    assert_eq!(versions(&db), [MERGE]);
    assert!(engine.status().unwrap().at_head);

    // Every step left exactly one applied history row.
    let history: Vec<(String, String)> = history(&db)
        .into_iter()
        .map(|h| {
            assert_eq!(h.outcome, "applied");
            (h.revision, h.direction)
        })
        .collect();
    let expected: Vec<(String, String)> = [
        (ROOT, "up"),
        (LEFT, "up"),
        (RIGHT, "up"),
        (MERGE, "up"),
        (MERGE, "down"),
        (MERGE, "up"),
    ]
    .iter()
    .map(|(r, d)| ((*r).to_owned(), (*d).to_owned()))
    .collect();
    assert_eq!(history, expected);
}

#[test]
fn rolling_back_one_branch_below_the_merge_keeps_the_other_branch() {
    let db = TestDb::new();
    let graph = diamond();
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up("heads")).unwrap();
    assert_eq!(versions(&db), [MERGE]);

    // Rolling back to the root undoes the merge and both branches.
    let reports = run(&mut engine, &down(ROOT)).unwrap();
    assert_eq!(report_ids(&reports).len(), 3);
    assert_eq!(report_ids(&reports)[0], MERGE);
    assert_eq!(versions(&db), [ROOT]);
    assert_eq!(tables(&db), ["t_root"]);

    // Apply only the right branch, then roll back just the left one: nothing to undo there.
    run(&mut engine, &up(RIGHT)).unwrap();
    assert_eq!(versions(&db), [RIGHT]);
    assert!(matches!(
        run(&mut engine, &down(LEFT)),
        Err(EngineError::Resolve(ResolveError::NotAnAncestor { .. }))
    ));
    assert_eq!(versions(&db), [RIGHT]);

    // Upgrading to the merge applies the missing branch and the merge.
    let reports = run(&mut engine, &up(MERGE)).unwrap();
    assert_eq!(report_ids(&reports), [LEFT, MERGE]);
    assert_eq!(versions(&db), [MERGE]);

    // And down to base empties everything.
    run(&mut engine, &down("base")).unwrap();
    assert!(versions(&db).is_empty());
    assert!(tables(&db).is_empty());
}

#[test]
fn two_unmerged_heads_are_applied_together_with_heads() {
    let db = TestDb::new();
    let graph = graph(vec![
        table_revision(ROOT, &[], "t_root"),
        table_revision(LEFT, &[ROOT], "t_left"),
        table_revision(RIGHT, &[ROOT], "t_right"),
    ]);
    let mut engine = engine(&db, &graph);
    run(&mut engine, &up("heads")).unwrap();
    assert_eq!(versions(&db), [LEFT, RIGHT]);
    let status = engine.status().unwrap();
    assert!(status.at_head);
    assert_eq!(status.current, heads(&[LEFT, RIGHT]));
    // Rolling back to the root undoes both heads, leaving one row.
    let reports = run(&mut engine, &down(ROOT)).unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(versions(&db), [ROOT]);
}
