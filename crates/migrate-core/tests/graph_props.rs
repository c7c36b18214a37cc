//! Properties of the revision graph over random graphs with branches and merges.

#![allow(missing_docs)]

use migrate_core::{Direction, Heads, ResolveError, Revision, RevisionGraph, Step, Target};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use std::collections::{BTreeSet, HashMap};

type Set = BTreeSet<usize>;

/// A random graph as generated: revision `i` follows `parents[i]`, all earlier than `i`.
#[derive(Debug, Clone)]
struct Spec {
    ids: Vec<String>,
    parents: Vec<Vec<usize>>,
    input_order: Vec<usize>,
}

impl Spec {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn graph(&self) -> RevisionGraph {
        let revisions = self
            .input_order
            .iter()
            .map(|&i| {
                let down: Vec<&str> = self.parents[i]
                    .iter()
                    .map(|&p| self.ids[p].as_str())
                    .collect();
                Revision::new(&self.ids[i], &down, "generated")
            })
            .collect();
        RevisionGraph::new(revisions).expect("a generated graph is valid")
    }

    fn index_of(&self, id: &str) -> usize {
        self.ids
            .iter()
            .position(|x| x == id)
            .expect("the graph only returns generated ids")
    }

    fn children(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&c| self.parents[c].contains(&i))
    }

    fn closure(&self, start: impl IntoIterator<Item = usize>) -> Set {
        let mut out = Set::new();
        let mut stack: Vec<usize> = start.into_iter().collect();
        while let Some(i) = stack.pop() {
            if out.insert(i) {
                stack.extend(self.parents[i].iter().copied());
            }
        }
        out
    }

    fn strict_descendants(&self, i: usize) -> Set {
        let mut out = Set::new();
        let mut stack: Vec<usize> = self.children(i).collect();
        while let Some(c) = stack.pop() {
            if out.insert(c) {
                stack.extend(self.children(c));
            }
        }
        out
    }

    fn maximal(&self, set: &Set) -> Heads {
        set.iter()
            .filter(|&&i| !self.children(i).any(|c| set.contains(&c)))
            .map(|&i| self.ids[i].clone())
            .collect()
    }

    fn ids_of(&self, set: &Set) -> Heads {
        set.iter().map(|&i| self.ids[i].clone()).collect()
    }

    fn is_down_closed(&self, set: &Set) -> bool {
        set.iter()
            .all(|&i| self.parents[i].iter().all(|p| set.contains(p)))
    }

    /// The applied set that is the closure of the picked revisions.
    fn applied(&self, picks: &[Index]) -> Set {
        self.closure(picks.iter().map(|p| p.index(self.len())))
    }
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Twelve hex digits: `shared` digits common to every index in the same group (`i % groups`),
/// then digits of the index's own hash, then the index itself so that ids never coincide.
fn make_id(i: usize, groups: usize, shared: usize) -> String {
    let group = format!("{:016x}", mix((i % groups) as u64 ^ 0x5eed));
    let own = format!("{:016x}", mix(i as u64));
    format!("{}{}{:02x}", &group[..shared], &own[..10 - shared], i)
}

fn parent_count() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 4 => Just(1usize), 2 => Just(2usize)]
}

/// Graphs of `sizes` revisions whose ids fall into `groups(n)` groups sharing a prefix.
fn specs(
    sizes: std::ops::RangeInclusive<usize>,
    groups: fn(usize) -> std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Spec> {
    sizes.prop_flat_map(move |n| {
        (
            prop::collection::vec((parent_count(), any::<Index>(), any::<Index>()), n),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            groups(n),
            4usize..=8,
        )
            .prop_map(move |(picks, input_order, groups, shared)| {
                let parents = picks
                    .iter()
                    .enumerate()
                    .map(|(i, (count, a, b))| {
                        if i == 0 {
                            return Vec::new();
                        }
                        let mut chosen = Vec::new();
                        for pick in [a, b].into_iter().take(*count) {
                            let p = pick.index(i);
                            if !chosen.contains(&p) {
                                chosen.push(p);
                            }
                        }
                        chosen
                    })
                    .collect();
                Spec {
                    ids: (0..n).map(|i| make_id(i, groups, shared)).collect(),
                    parents,
                    input_order,
                }
            })
    })
}

fn any_spec() -> impl Strategy<Value = Spec> {
    specs(1..=40, |n| 1..=n)
}

/// Graphs where at least two ids share their first `shared` (>= 4) digits.
fn colliding_spec() -> impl Strategy<Value = Spec> {
    specs(2..=40, |n| 1..=(n - 1).min(4))
}

fn revision_ids(steps: &[Step]) -> Vec<&str> {
    steps.iter().map(|s| s.revision.as_str()).collect()
}

/// Checks an upgrade plan from `applied`; returns the applied set it ends with.
fn check_upgrade(
    spec: &Spec,
    applied: &Set,
    wanted: &Set,
    steps: &[Step],
) -> Result<Set, TestCaseError> {
    let expected: Set = wanted.difference(applied).copied().collect();
    let planned: Set = steps.iter().map(|s| spec.index_of(&s.revision)).collect();
    prop_assert_eq!(
        planned.len(),
        steps.len(),
        "a revision is applied twice: {:?}",
        revision_ids(steps)
    );
    prop_assert_eq!(spec.ids_of(&planned), spec.ids_of(&expected));
    let mut state = applied.clone();
    let mut heads = spec.maximal(applied);
    for step in steps {
        let i = spec.index_of(&step.revision);
        prop_assert_eq!(step.direction, Direction::Up);
        prop_assert!(
            spec.parents[i].iter().all(|p| state.contains(p)),
            "{} is applied before one of its parents",
            step.revision
        );
        prop_assert_eq!(&step.heads_before, &heads);
        state.insert(i);
        heads = spec.maximal(&state);
        prop_assert_eq!(
            &step.heads_after,
            &heads,
            "after applying {}",
            step.revision
        );
    }
    let union: Set = applied.union(wanted).copied().collect();
    prop_assert_eq!(heads, spec.maximal(&union));
    Ok(state)
}

/// Checks a downgrade plan from `applied` that must undo exactly `undo`; returns what stays.
fn check_downgrade(
    spec: &Spec,
    applied: &Set,
    undo: &Set,
    steps: &[Step],
) -> Result<Set, TestCaseError> {
    let planned: Set = steps.iter().map(|s| spec.index_of(&s.revision)).collect();
    prop_assert_eq!(
        planned.len(),
        steps.len(),
        "a revision is undone twice: {:?}",
        revision_ids(steps)
    );
    prop_assert_eq!(spec.ids_of(&planned), spec.ids_of(undo));
    let mut state = applied.clone();
    let mut heads = spec.maximal(applied);
    for step in steps {
        let i = spec.index_of(&step.revision);
        prop_assert_eq!(step.direction, Direction::Down);
        prop_assert!(
            state.contains(&i),
            "{} is undone but was not applied",
            step.revision
        );
        prop_assert!(
            !spec.children(i).any(|c| state.contains(&c)),
            "{} is undone while a child of it stays applied",
            step.revision
        );
        prop_assert_eq!(&step.heads_before, &heads);
        state.remove(&i);
        prop_assert!(spec.is_down_closed(&state));
        heads = spec.maximal(&state);
        prop_assert_eq!(&step.heads_after, &heads, "after undoing {}", step.revision);
    }
    Ok(state)
}

fn revisions(ids: Heads) -> Target {
    Target::Revisions(ids)
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn graph_orders_every_revision_after_its_parents(spec in any_spec()) {
        let graph = spec.graph();
        let order: Vec<String> = graph.revisions().iter().map(|r| r.id.clone()).collect();
        prop_assert_eq!(sorted(order.clone()), sorted(spec.ids.clone()));
        let position: HashMap<&str, usize> =
            order.iter().enumerate().map(|(p, id)| (id.as_str(), p)).collect();
        for r in graph.revisions() {
            let i = spec.index_of(&r.id);
            let expected_down: Vec<&str> = spec.parents[i].iter().map(|&p| spec.ids[p].as_str()).collect();
            prop_assert_eq!(&r.down, &expected_down);
            for d in &r.down {
                prop_assert!(position[d.as_str()] < position[r.id.as_str()], "{} comes before its parent {}", r.id, d);
            }
        }
    }

    #[test]
    fn heads_and_roots_are_the_revisions_without_children_or_parents(spec in any_spec()) {
        let graph = spec.graph();
        let heads: Heads = graph.heads().into_iter().map(str::to_owned).collect();
        let roots: Heads = graph.roots().into_iter().map(str::to_owned).collect();
        let all: Set = (0..spec.len()).collect();
        prop_assert_eq!(graph.heads().len(), heads.len());
        prop_assert_eq!(heads, spec.maximal(&all));
        let expected_roots: Set = (0..spec.len()).filter(|&i| spec.parents[i].is_empty()).collect();
        prop_assert_eq!(roots, spec.ids_of(&expected_roots));
    }

    #[test]
    fn applied_is_the_closure_of_the_current_heads(spec in any_spec(), picks in prop::collection::vec(any::<Index>(), 0..=3)) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let found = graph.applied(&spec.maximal(&applied)).expect("the heads are known");
        prop_assert_eq!(found, spec.ids_of(&applied));
    }

    #[test]
    fn upgrade_applies_exactly_the_missing_ancestors_of_the_target_parents_first(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let t = target.index(spec.len());
        let steps = graph
            .plan_upgrade(&spec.maximal(&applied), &revisions(Heads::from([spec.ids[t].clone()])))
            .expect("known heads and target");
        check_upgrade(&spec, &applied, &spec.closure([t]), &steps)?;
    }

    #[test]
    fn upgrade_to_all_heads_applies_everything_missing(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let target = graph.resolve("heads", &Heads::new()).expect("heads always resolves");
        let steps = graph.plan_upgrade(&spec.maximal(&applied), &target).expect("known heads");
        check_upgrade(&spec, &applied, &(0..spec.len()).collect(), &steps)?;
    }

    #[test]
    fn upgrading_again_to_the_same_target_plans_nothing(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let target = revisions(Heads::from([spec.ids[target.index(spec.len())].clone()]));
        let current = spec.maximal(&applied);
        let steps = graph.plan_upgrade(&current, &target).expect("known heads and target");
        let after = steps.last().map_or(current, |s| s.heads_after.clone());
        let again = graph.plan_upgrade(&after, &target).expect("known heads and target");
        prop_assert_eq!(again, Vec::new());
    }

    #[test]
    fn downgrade_undoes_exactly_the_applied_descendants_of_the_target(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 1..=3),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let applied_list: Vec<usize> = applied.iter().copied().collect();
        let t = applied_list[target.index(applied_list.len())];
        let steps = graph
            .plan_downgrade(&spec.maximal(&applied), &revisions(Heads::from([spec.ids[t].clone()])))
            .expect("the target is applied");
        let undo: Set = spec.strict_descendants(t).intersection(&applied).copied().collect();
        let remaining = check_downgrade(&spec, &applied, &undo, &steps)?;
        prop_assert!(remaining.contains(&t));
        let final_heads = steps.last().map_or_else(|| spec.maximal(&applied), |s| s.heads_after.clone());
        prop_assert_eq!(final_heads, spec.maximal(&remaining));
    }

    #[test]
    fn downgrade_never_undoes_a_revision_whose_child_stays(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 1..=3),
        targets in prop::collection::vec(any::<Index>(), 1..=2),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let applied_list: Vec<usize> = applied.iter().copied().collect();
        let chosen: Set = targets.iter().map(|t| applied_list[t.index(applied_list.len())]).collect();
        let steps = graph
            .plan_downgrade(&spec.maximal(&applied), &revisions(spec.ids_of(&chosen)))
            .expect("the targets are applied");
        let keep = spec.closure(chosen.iter().copied());
        let undo: Set = chosen
            .iter()
            .flat_map(|&t| spec.strict_descendants(t))
            .filter(|i| applied.contains(i) && !keep.contains(i))
            .collect();
        check_downgrade(&spec, &applied, &undo, &steps)?;
    }

    #[test]
    fn downgrade_to_base_undoes_everything(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let target = graph.resolve("base", &Heads::new()).expect("base always resolves");
        prop_assert_eq!(&target, &Target::Base);
        let steps = graph.plan_downgrade(&spec.maximal(&applied), &target).expect("known heads");
        let remaining = check_downgrade(&spec, &applied, &applied, &steps)?;
        prop_assert!(remaining.is_empty());
        if let Some(last) = steps.last() {
            prop_assert!(last.heads_after.is_empty());
        }
    }

    #[test]
    fn downgrade_to_a_revision_that_is_not_applied_is_refused(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let missing: Vec<usize> = (0..spec.len()).filter(|i| !applied.contains(i)).collect();
        prop_assume!(!missing.is_empty());
        let t = missing[target.index(missing.len())];
        let current = spec.maximal(&applied);
        let refused = graph.plan_downgrade(&current, &revisions(Heads::from([spec.ids[t].clone()])));
        prop_assert_eq!(
            refused,
            Err(ResolveError::NotAnAncestor { target: spec.ids[t].clone(), current: current.into_iter().collect() })
        );
    }

    #[test]
    fn upgrade_then_downgrade_to_the_start_revision_returns_to_it(
        spec in any_spec(),
        start in any::<Index>(),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let r = start.index(spec.len());
        let above: Vec<usize> = spec.strict_descendants(r).into_iter().collect();
        prop_assume!(!above.is_empty());
        let t = above[target.index(above.len())];
        let only_r = Heads::from([spec.ids[r].clone()]);
        let up = graph
            .plan_upgrade(&only_r, &revisions(Heads::from([spec.ids[t].clone()])))
            .expect("known heads and target");
        let applied = check_upgrade(&spec, &spec.closure([r]), &spec.closure([t]), &up)?;
        let top = up.last().map_or_else(|| only_r.clone(), |s| s.heads_after.clone());
        let down = graph.plan_downgrade(&top, &revisions(only_r.clone())).expect("r is applied");
        let newly: Set = applied.difference(&spec.closure([r])).copied().collect();
        let descends_from_r = newly.is_subset(&spec.strict_descendants(r));
        let back = down.last().map_or(top, |s| s.heads_after.clone());
        if descends_from_r {
            prop_assert_eq!(back, only_r);
        } else {
            let other_branches: Set = newly.difference(&spec.strict_descendants(r)).copied().collect();
            let stays: Set = spec.closure([r]).union(&other_branches).copied().collect();
            prop_assert_eq!(back, spec.maximal(&stays));
        }
    }

    #[test]
    fn upgrade_then_downgrade_to_the_original_heads_undoes_only_their_descendants(
        spec in any_spec(),
        picks in prop::collection::vec(any::<Index>(), 0..=3),
        target in any::<Index>(),
    ) {
        let graph = spec.graph();
        let applied = spec.applied(&picks);
        let original = spec.maximal(&applied);
        let t = target.index(spec.len());
        let up = graph
            .plan_upgrade(&original, &revisions(Heads::from([spec.ids[t].clone()])))
            .expect("known heads and target");
        let after_up = check_upgrade(&spec, &applied, &spec.closure([t]), &up)?;
        let top = up.last().map_or_else(|| original.clone(), |s| s.heads_after.clone());
        let back_target = if original.is_empty() { Target::Base } else { revisions(original.clone()) };
        let down = graph.plan_downgrade(&top, &back_target).expect("the original heads are applied");
        let newly: Set = after_up.difference(&applied).copied().collect();
        let above_original: Set = original
            .iter()
            .flat_map(|h| spec.strict_descendants(spec.index_of(h)))
            .collect();
        let undo: Set = if original.is_empty() {
            after_up.clone()
        } else {
            newly.intersection(&above_original).copied().collect()
        };
        let remaining = check_downgrade(&spec, &after_up, &undo, &down)?;
        if original.is_empty() || newly.is_subset(&above_original) {
            prop_assert_eq!(spec.maximal(&remaining), original);
        }
    }

    #[test]
    fn every_full_id_resolves_to_itself(spec in any_spec()) {
        let graph = spec.graph();
        for id in &spec.ids {
            prop_assert_eq!(graph.resolve_id(id), Ok(id.clone()));
            prop_assert_eq!(graph.resolve(id, &Heads::new()), Ok(revisions(Heads::from([id.clone()]))));
        }
    }

    #[test]
    fn every_prefix_resolves_as_a_search_over_all_ids_says(spec in any_spec()) {
        let graph = spec.graph();
        for id in &spec.ids {
            for len in 1..id.len() {
                check_prefix(&spec, &graph, &id[..len])?;
            }
        }
    }

    #[test]
    fn unknown_hex_prefixes_are_unknown_or_too_short(spec in any_spec(), given in "[0-9a-f]{1,12}") {
        let graph = spec.graph();
        check_prefix(&spec, &graph, &given)?;
    }

    #[test]
    fn ambiguous_prefixes_name_exactly_the_revisions_sharing_them(spec in colliding_spec()) {
        let graph = spec.graph();
        let mut ambiguous = 0;
        for id in &spec.ids {
            for len in 4..id.len() {
                if matches!(graph.resolve_id(&id[..len]), Err(ResolveError::Ambiguous { .. })) {
                    ambiguous += 1;
                }
                check_prefix(&spec, &graph, &id[..len])?;
            }
        }
        prop_assert!(ambiguous > 0, "ids {:?} share no prefix", spec.ids);
    }

    #[test]
    fn head_is_refused_naming_every_head_iff_there_are_several(spec in any_spec()) {
        let graph = spec.graph();
        let all: Set = (0..spec.len()).collect();
        let heads = spec.maximal(&all);
        let resolved = graph.resolve("head", &Heads::new());
        if heads.len() >= 2 {
            let Err(ResolveError::MultipleHeads(named)) = resolved else {
                return Err(TestCaseError::fail(format!("head with heads {heads:?} gave {resolved:?}")));
            };
            prop_assert_eq!(named.iter().cloned().collect::<Heads>(), heads);
            prop_assert_eq!(named.len(), spec.maximal(&all).len());
        } else {
            prop_assert_eq!(resolved, Ok(revisions(heads)));
        }
    }

    #[test]
    fn heads_resolves_to_every_head_and_base_to_base(spec in any_spec(), picks in prop::collection::vec(any::<Index>(), 0..=3)) {
        let graph = spec.graph();
        let current = spec.maximal(&spec.applied(&picks));
        let all: Set = (0..spec.len()).collect();
        prop_assert_eq!(graph.resolve("heads", &current), Ok(revisions(spec.maximal(&all))));
        prop_assert_eq!(graph.resolve("base", &current), Ok(Target::Base));
    }

    #[test]
    fn one_step_from_a_revision_follows_its_only_edge_or_names_the_choices(spec in any_spec(), at in any::<Index>()) {
        let graph = spec.graph();
        let i = at.index(spec.len());
        let id = &spec.ids[i];
        let children: Vec<String> = spec.children(i).map(|c| spec.ids[c].clone()).collect();
        let up = graph.resolve(&format!("{id}+1"), &Heads::new());
        match children.as_slice() {
            [] => prop_assert_eq!(up, Err(ResolveError::OutOfRange { target: format!("{id}+1"), available: 0 })),
            [one] => prop_assert_eq!(up, Ok(revisions(Heads::from([one.clone()])))),
            many => {
                let Err(ResolveError::AmbiguousStep { from, candidates }) = up else {
                    return Err(TestCaseError::fail(format!("{id}+1 gave {up:?}")));
                };
                prop_assert_eq!(&from, id);
                prop_assert_eq!(sorted(candidates), sorted(many.to_vec()));
            }
        }
        let parents: Vec<String> = spec.parents[i].iter().map(|&p| spec.ids[p].clone()).collect();
        let down = graph.resolve("-1", &Heads::from([id.clone()]));
        match parents.as_slice() {
            [] => prop_assert_eq!(down, Ok(Target::Base)),
            [one] => prop_assert_eq!(down, Ok(revisions(Heads::from([one.clone()])))),
            many => {
                let Err(ResolveError::AmbiguousStep { from, candidates }) = down else {
                    return Err(TestCaseError::fail(format!("-1 from {id} gave {down:?}")));
                };
                prop_assert_eq!(&from, id);
                prop_assert_eq!(sorted(candidates), sorted(many.to_vec()));
            }
        }
    }
}

/// What `resolve_id` must say about `given`, found by comparing it with every id.
fn check_prefix(spec: &Spec, graph: &RevisionGraph, given: &str) -> Result<(), TestCaseError> {
    let matching: Vec<String> = spec
        .ids
        .iter()
        .filter(|id| id.starts_with(given))
        .cloned()
        .collect();
    let resolved = graph.resolve_id(given);
    if spec.ids.iter().any(|id| id == given) {
        prop_assert_eq!(resolved, Ok(given.to_owned()));
    } else if given.len() < 4 {
        let expected = if matching.is_empty() {
            ResolveError::Unknown(given.to_owned())
        } else {
            ResolveError::PrefixTooShort(given.to_owned())
        };
        prop_assert_eq!(resolved, Err(expected));
    } else {
        match matching.as_slice() {
            [] => prop_assert_eq!(resolved, Err(ResolveError::Unknown(given.to_owned()))),
            [one] => prop_assert_eq!(resolved, Ok(one.clone())),
            many => {
                let Err(ResolveError::Ambiguous { prefix, candidates }) = resolved else {
                    return Err(TestCaseError::fail(format!(
                        "{given} matches {many:?} but gave {resolved:?}"
                    )));
                };
                prop_assert_eq!(prefix, given);
                prop_assert_eq!(sorted(candidates), sorted(many.to_vec()));
            }
        }
    }
    Ok(())
}
