//! Example-based tests of the revision graph: relative targets, branches, merges, errors.

#![allow(missing_docs)]

use migrate_core::graph::GraphError;
use migrate_core::{Direction, Heads, ResolveError, Revision, RevisionGraph, Step, Target};

const A: &str = "a1b2c3d4e5f6";
const B: &str = "b2c3d4e5f6a1";
const C: &str = "c3d4e5f6a1b2";
const D: &str = "d4e5f6a1b2c3";

const ROOT: &str = "1f00aa000001";
const LEFT: &str = "2e00bb000002";
const RIGHT: &str = "3d00cc000003";
const MERGE: &str = "4c00dd000004";

fn chain() -> RevisionGraph {
    RevisionGraph::new(vec![
        Revision::new(A, &[], "create users"),
        Revision::new(B, &[A], "add email"),
        Revision::new(C, &[B], "index email"),
        Revision::new(D, &[C], "drop legacy"),
    ])
    .expect("a linear chain is a graph")
}

/// ROOT, two branches LEFT and RIGHT on it, and MERGE joining them.
fn diamond() -> RevisionGraph {
    RevisionGraph::new(vec![
        Revision::new(ROOT, &[], "root"),
        Revision::new(LEFT, &[ROOT], "left branch"),
        Revision::new(RIGHT, &[ROOT], "right branch"),
        Revision::new(MERGE, &[LEFT, RIGHT], "merge"),
    ])
    .expect("a diamond is a graph")
}

/// ROOT with two branches and no merge.
fn fork() -> RevisionGraph {
    RevisionGraph::new(vec![
        Revision::new(ROOT, &[], "root"),
        Revision::new(LEFT, &[ROOT], "left branch"),
        Revision::new(RIGHT, &[ROOT], "right branch"),
    ])
    .expect("a fork is a graph")
}

fn at(ids: &[&str]) -> Heads {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn rev(id: &str) -> Target {
    Target::Revisions(at(&[id]))
}

fn names(steps: &[Step]) -> Vec<(&str, Direction)> {
    steps
        .iter()
        .map(|s| (s.revision.as_str(), s.direction))
        .collect()
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[test]
fn plus_one_from_base_is_the_root() {
    assert_eq!(chain().resolve("+1", &at(&[])), Ok(rev(A)));
}

#[test]
fn plus_two_moves_two_revisions_up_from_the_current_one() {
    assert_eq!(chain().resolve("+2", &at(&[A])), Ok(rev(C)));
}

#[test]
fn minus_one_is_the_parent_of_the_current_revision() {
    assert_eq!(chain().resolve("-1", &at(&[C])), Ok(rev(B)));
}

#[test]
fn minus_two_from_the_second_revision_is_base() {
    assert_eq!(chain().resolve("-2", &at(&[B])), Ok(Target::Base));
}

#[test]
fn id_plus_one_is_the_child_of_that_revision() {
    assert_eq!(chain().resolve(&format!("{B}+1"), &at(&[])), Ok(rev(C)));
}

#[test]
fn prefix_minus_one_is_the_parent_of_the_revision_it_names() {
    assert_eq!(chain().resolve("c3d4-1", &at(&[])), Ok(rev(B)));
}

#[test]
fn head_minus_one_is_the_parent_of_the_single_head() {
    assert_eq!(chain().resolve("head-1", &at(&[A])), Ok(rev(C)));
}

#[test]
fn head_minus_the_chain_length_is_base() {
    assert_eq!(chain().resolve("head-4", &at(&[])), Ok(Target::Base));
}

#[test]
fn base_plus_two_is_the_second_revision() {
    assert_eq!(chain().resolve("base+2", &at(&[])), Ok(rev(B)));
}

#[test]
fn surrounding_whitespace_is_ignored() {
    assert_eq!(chain().resolve("  b2c3  ", &at(&[])), Ok(rev(B)));
}

#[test]
fn stepping_past_the_last_head_is_out_of_range_and_says_how_far_it_can_go() {
    let graph = chain();
    assert_eq!(
        graph.resolve("+3", &at(&[C])),
        Err(ResolveError::OutOfRange {
            target: "+3".into(),
            available: 1
        })
    );
    assert_eq!(
        graph.resolve("+1", &at(&[D])),
        Err(ResolveError::OutOfRange {
            target: "+1".into(),
            available: 0
        })
    );
}

#[test]
fn stepping_below_base_is_out_of_range() {
    let graph = chain();
    assert_eq!(
        graph.resolve("-1", &at(&[])),
        Err(ResolveError::OutOfRange {
            target: "-1".into(),
            available: 0
        })
    );
    assert_eq!(
        graph.resolve("head-5", &at(&[])),
        Err(ResolveError::OutOfRange {
            target: "head-5".into(),
            available: 4
        })
    );
}

#[test]
fn unreadable_step_counts_are_bad_targets() {
    let graph = chain();
    for target in ["+x", "-", "head+", "a1b2+two"] {
        assert_eq!(
            graph.resolve(target, &at(&[A])),
            Err(ResolveError::BadTarget(target.into())),
            "{target}"
        );
    }
}

#[test]
fn relative_target_from_several_current_heads_is_refused() {
    assert_eq!(
        fork().resolve("+1", &at(&[LEFT, RIGHT])),
        Err(ResolveError::CurrentNotSingle(strings(&[LEFT, RIGHT])))
    );
}

#[test]
fn stepping_up_from_a_branch_point_names_both_children() {
    assert_eq!(
        fork().resolve("+1", &at(&[ROOT])),
        Err(ResolveError::AmbiguousStep {
            from: ROOT.into(),
            candidates: strings(&[LEFT, RIGHT])
        })
    );
}

#[test]
fn stepping_down_from_a_merge_names_both_parents() {
    assert_eq!(
        diamond().resolve(&format!("{MERGE}-1"), &at(&[])),
        Err(ResolveError::AmbiguousStep {
            from: MERGE.into(),
            candidates: strings(&[LEFT, RIGHT])
        })
    );
}

#[test]
fn stepping_up_from_base_with_several_roots_names_them() {
    let graph = RevisionGraph::new(vec![
        Revision::new(A, &[], "one"),
        Revision::new(B, &[], "two"),
    ])
    .expect("two roots form a graph");
    assert_eq!(
        graph.resolve("+1", &at(&[])),
        Err(ResolveError::AmbiguousStep {
            from: "base".into(),
            candidates: strings(&[A, B])
        })
    );
}

#[test]
fn head_with_several_heads_names_them_and_heads_takes_them_all() {
    let graph = fork();
    assert_eq!(
        graph.resolve("head", &at(&[])),
        Err(ResolveError::MultipleHeads(strings(&[LEFT, RIGHT])))
    );
    assert_eq!(
        graph.resolve("heads", &at(&[])),
        Ok(Target::Revisions(at(&[LEFT, RIGHT])))
    );
}

#[test]
fn an_empty_graph_resolves_only_base_head_and_heads() {
    let graph = RevisionGraph::new(Vec::new()).expect("no revisions is a graph");
    assert!(graph.is_empty());
    for target in ["base", "head", "heads"] {
        assert_eq!(
            graph.resolve(target, &at(&[])),
            Ok(Target::Base),
            "{target}"
        );
    }
    assert_eq!(graph.resolve("+1", &at(&[])), Err(ResolveError::Empty));
}

#[test]
fn upgrade_to_a_merge_applies_the_missing_branch_first() {
    let graph = diamond();
    let steps = graph
        .plan_upgrade(&at(&[LEFT]), &rev(MERGE))
        .expect("known revisions");
    assert_eq!(
        steps,
        vec![
            Step {
                revision: RIGHT.into(),
                direction: Direction::Up,
                heads_before: at(&[LEFT]),
                heads_after: at(&[LEFT, RIGHT]),
            },
            Step {
                revision: MERGE.into(),
                direction: Direction::Up,
                heads_before: at(&[LEFT, RIGHT]),
                heads_after: at(&[MERGE]),
            },
        ]
    );
}

#[test]
fn upgrade_to_an_applied_revision_plans_nothing() {
    assert_eq!(chain().plan_upgrade(&at(&[D]), &rev(B)), Ok(Vec::new()));
}

#[test]
fn rolling_back_one_parent_of_a_merge_undoes_the_merge_and_leaves_two_heads() {
    let steps = diamond()
        .plan_downgrade(&at(&[MERGE]), &rev(LEFT))
        .expect("LEFT is applied");
    assert_eq!(
        steps,
        vec![Step {
            revision: MERGE.into(),
            direction: Direction::Down,
            heads_before: at(&[MERGE]),
            heads_after: at(&[LEFT, RIGHT]),
        }]
    );
}

#[test]
fn rolling_back_below_a_merge_undoes_both_branches_newest_first() {
    let steps = diamond()
        .plan_downgrade(&at(&[MERGE]), &rev(ROOT))
        .expect("ROOT is applied");
    assert_eq!(
        names(&steps),
        vec![
            (MERGE, Direction::Down),
            (RIGHT, Direction::Down),
            (LEFT, Direction::Down)
        ]
    );
    assert_eq!(steps[1].heads_after, at(&[LEFT]));
    assert_eq!(steps[2].heads_after, at(&[ROOT]));
}

#[test]
fn rolling_back_to_one_branch_leaves_the_other_branch_applied() {
    let graph = fork();
    assert_eq!(
        graph.plan_downgrade(&at(&[LEFT, RIGHT]), &rev(LEFT)),
        Ok(Vec::new())
    );
    let steps = graph
        .plan_downgrade(&at(&[LEFT, RIGHT]), &rev(ROOT))
        .expect("ROOT is applied");
    assert_eq!(
        names(&steps),
        vec![(RIGHT, Direction::Down), (LEFT, Direction::Down)]
    );
}

#[test]
fn rolling_back_to_a_revision_that_is_not_applied_is_refused() {
    assert_eq!(
        fork().plan_downgrade(&at(&[LEFT]), &rev(RIGHT)),
        Err(ResolveError::NotAnAncestor {
            target: RIGHT.into(),
            current: strings(&[LEFT])
        })
    );
}

#[test]
fn rolling_back_the_chain_to_base_undoes_every_revision_newest_first() {
    let steps = chain()
        .plan_downgrade(&at(&[D]), &Target::Base)
        .expect("known heads");
    assert_eq!(
        names(&steps),
        vec![
            (D, Direction::Down),
            (C, Direction::Down),
            (B, Direction::Down),
            (A, Direction::Down)
        ]
    );
    assert_eq!(steps[3].heads_after, at(&[]));
}

#[test]
fn two_revisions_with_one_id_are_refused() {
    let refused = RevisionGraph::new(vec![
        Revision::new(A, &[], "one"),
        Revision::new(A, &[], "two"),
    ]);
    assert_eq!(refused.map(|_| ()), Err(GraphError::DuplicateId(A.into())));
}

#[test]
fn a_down_revision_that_does_not_exist_is_refused() {
    let refused = RevisionGraph::new(vec![Revision::new(B, &[A], "orphan")]);
    assert_eq!(
        refused.map(|_| ()),
        Err(GraphError::UnknownDownRevision {
            revision: B.into(),
            down: A.into()
        })
    );
}

#[test]
fn a_cycle_is_refused_naming_the_revisions_on_it() {
    let refused = RevisionGraph::new(vec![
        Revision::new(A, &[], "root"),
        Revision::new(B, &[C], "b"),
        Revision::new(C, &[B], "c"),
    ]);
    assert_eq!(
        refused.map(|_| ()),
        Err(GraphError::Cycle(strings(&[B, C])))
    );
    let self_loop = RevisionGraph::new(vec![Revision::new(A, &[A], "loop")]);
    assert_eq!(self_loop.map(|_| ()), Err(GraphError::Cycle(strings(&[A]))));
}

#[test]
fn an_id_with_punctuation_is_refused() {
    let refused = RevisionGraph::new(vec![Revision::new("a1b2-c3", &[], "dash")]);
    assert_eq!(
        refused.map(|_| ()),
        Err(GraphError::InvalidId("a1b2-c3".into()))
    );
}

#[test]
fn the_graph_orders_revisions_parents_first_whatever_order_they_come_in() {
    let graph = RevisionGraph::new(vec![
        Revision::new(C, &[B], "c"),
        Revision::new(A, &[], "a"),
        Revision::new(B, &[A], "b"),
    ])
    .expect("a shuffled chain is a graph");
    let ids: Vec<&str> = graph.revisions().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![A, B, C]);
    assert_eq!(graph.children_of(A), vec![B]);
    assert_eq!(graph.get(C).map(|r| r.message.as_str()), Some("c"));
}

#[test]
fn a_database_at_an_unknown_revision_is_refused() {
    let graph = chain();
    let current = at(&[B, "ffffffffffff"]);
    let unknown = ResolveError::UnknownCurrent(strings(&["ffffffffffff"]));
    assert_eq!(graph.applied(&current), Err(unknown.clone()));
    assert_eq!(graph.plan_upgrade(&current, &rev(D)), Err(unknown.clone()));
    assert_eq!(
        graph.plan_downgrade(&current, &Target::Base),
        Err(unknown.clone())
    );
    assert_eq!(graph.resolve("+1", &current), Err(unknown));
}

#[test]
fn error_messages_tell_the_operator_what_to_do() {
    let graph = chain();
    let fork = fork();
    let resolve = |g: &RevisionGraph, target: &str, current: &[&str]| {
        g.resolve(target, &at(current))
            .expect_err("this target is refused")
            .to_string()
    };
    let graph_error = |revisions: Vec<Revision>| {
        RevisionGraph::new(revisions)
            .map(|_| ())
            .expect_err("these revisions are refused")
            .to_string()
    };
    let empty = RevisionGraph::new(Vec::new()).expect("no revisions is a graph");
    let ambiguous = RevisionGraph::new(vec![
        Revision::new("abcd00000001", &[], "one"),
        Revision::new("abcd00000002", &["abcd00000001"], "two"),
    ])
    .expect("a chain is a graph");
    let messages = [
        ("Unknown", resolve(&graph, "ffff", &[])),
        ("PrefixTooShort", resolve(&graph, "a1", &[])),
        ("Ambiguous", resolve(&ambiguous, "abcd", &[])),
        ("MultipleHeads", resolve(&fork, "head", &[])),
        ("Empty", resolve(&empty, "a1b2c3", &[])),
        ("AmbiguousStep", resolve(&fork, "+1", &[ROOT])),
        ("OutOfRange", resolve(&graph, "+2", &[C])),
        ("CurrentNotSingle", resolve(&fork, "-1", &[LEFT, RIGHT])),
        (
            "UnknownCurrent",
            graph
                .applied(&at(&["ffffffffffff"]))
                .expect_err("unknown")
                .to_string(),
        ),
        (
            "NotAnAncestor",
            fork.plan_downgrade(&at(&[LEFT]), &rev(RIGHT))
                .expect_err("not applied")
                .to_string(),
        ),
        (
            "NotAnAncestor at base",
            graph
                .plan_downgrade(&at(&[]), &rev(A))
                .expect_err("not applied")
                .to_string(),
        ),
        ("BadTarget", resolve(&graph, "+x", &[A])),
        (
            "DuplicateId",
            graph_error(vec![
                Revision::new(A, &[], "one"),
                Revision::new(A, &[], "two"),
            ]),
        ),
        (
            "UnknownDownRevision",
            graph_error(vec![Revision::new(B, &[A], "orphan")]),
        ),
        (
            "Cycle",
            graph_error(vec![
                Revision::new(B, &[C], "b"),
                Revision::new(C, &[B], "c"),
            ]),
        ),
        (
            "InvalidId",
            graph_error(vec![Revision::new("a1b2-c3", &[], "dash")]),
        ),
    ];
    let text: String = messages
        .iter()
        .map(|(variant, message)| format!("{variant}:\n  {message}\n"))
        .collect();
    insta::assert_snapshot!(text);
}
