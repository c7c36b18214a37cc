//! The revision graph: roots, branches, merges; target resolution; and planning.
//!
//! The database keeps only its current heads (as Alembic does in `alembic_version`); the set of
//! applied revisions is the closure of those heads under "down revision of".

use crate::revision::{Direction, Revision};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;

/// Revision ids, ordered so that output is stable.
pub type Heads = BTreeSet<String>;

/// A validated set of revisions in a stable topological order (oldest first).
#[derive(Debug, Clone)]
pub struct RevisionGraph {
    revisions: Vec<Revision>,
    index: HashMap<String, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
}

/// Why a set of revisions does not form a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraphError {
    /// Two revisions share an id.
    DuplicateId(String),
    /// A revision names a down revision that is not in the set.
    UnknownDownRevision {
        /// The revision.
        revision: String,
        /// The missing down revision.
        down: String,
    },
    /// The down-revision links form a cycle through these revisions.
    Cycle(Vec<String>),
    /// An id is empty or has characters other than letters, digits and `_`.
    InvalidId(String),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::DuplicateId(id) => write!(
                f,
                "two revisions have the id {id}: give one of them a new id, and point the \
                 revisions that follow it at that id"
            ),
            GraphError::UnknownDownRevision { revision, down } => write!(
                f,
                "revision {revision} follows {down}, which does not exist: register {down} in \
                 the revision list, or correct the down revisions of {revision}"
            ),
            GraphError::Cycle(ids) => write!(
                f,
                "revisions {} form or follow a cycle: a revision may follow only older ones; \
                 correct their down revisions",
                ids.join(", ")
            ),
            GraphError::InvalidId(id) => write!(
                f,
                "invalid revision id {id:?}: use only letters, digits and `_` (12 hex digits \
                 by convention)"
            ),
        }
    }
}

impl std::error::Error for GraphError {}

/// What a target names, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Before any revision.
    Base,
    /// These revisions (and, implicitly, all their ancestors).
    Revisions(Heads),
}

/// Why a target or the database's state cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveError {
    /// No revision has that id or prefix.
    Unknown(String),
    /// A prefix shorter than 4 characters (too easy to get wrong).
    PrefixTooShort(String),
    /// Several revisions start with that prefix.
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The revisions it matches.
        candidates: Vec<String>,
    },
    /// `head` (or no target) while the graph has several heads.
    MultipleHeads(Vec<String>),
    /// The graph has no revisions at all.
    Empty,
    /// A relative step went through a branch point or a merge.
    AmbiguousStep {
        /// Where the step started.
        from: String,
        /// The revisions it could go to.
        candidates: Vec<String>,
    },
    /// A relative step went past the end of the graph.
    OutOfRange {
        /// The target as given.
        target: String,
        /// How many steps were possible.
        available: usize,
    },
    /// A relative target from the current revision while the database has several heads.
    CurrentNotSingle(Vec<String>),
    /// The database records revisions this graph does not have.
    UnknownCurrent(Vec<String>),
    /// The database records revisions that were released and then withdrawn (see
    /// [`Withdrawal`]): the only way on is back down their own chain.
    Withdrawn {
        /// The withdrawn revisions the database is at.
        current: Vec<String>,
        /// When and why they were withdrawn.
        reason: String,
        /// The revision to roll back to, which both chains share.
        back_to: String,
    },
    /// A rollback target that is not applied.
    NotAnAncestor {
        /// The target.
        target: String,
        /// The database's current heads.
        current: Vec<String>,
    },
    /// A relative target that cannot be parsed.
    BadTarget(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Unknown(t) => write!(
                f,
                "unknown revision {t:?}: run `identity-migrate list` to see the revisions"
            ),
            ResolveError::PrefixTooShort(t) => write!(
                f,
                "revision prefix {t:?} is too short: give at least 4 characters"
            ),
            ResolveError::Ambiguous { prefix, candidates } => write!(
                f,
                "revision prefix {prefix:?} is ambiguous: it matches {}; give more characters",
                candidates.join(", ")
            ),
            ResolveError::MultipleHeads(heads) => write!(
                f,
                "there are several heads ({}): name one, or `heads` for all of them",
                heads.join(", ")
            ),
            ResolveError::Empty => write!(
                f,
                "there are no revisions: the only targets are base, head and heads"
            ),
            ResolveError::AmbiguousStep { from, candidates } => write!(
                f,
                "cannot step from {from}: it leads to {}; name the revision instead",
                candidates.join(", ")
            ),
            ResolveError::OutOfRange { target, available } => write!(
                f,
                "target {target:?} goes too far: only {available} step(s) are possible"
            ),
            ResolveError::CurrentNotSingle(heads) => write!(
                f,
                "the database is at several heads ({}): a relative target needs one; name the revision",
                heads.join(", ")
            ),
            ResolveError::UnknownCurrent(ids) => write!(
                f,
                "the database is at revision {} which this binary does not know (it was probably migrated by a newer version): refusing to touch it; use that version",
                ids.join(", ")
            ),
            ResolveError::Withdrawn {
                current,
                reason,
                back_to,
            } => write!(
                f,
                "the database is at revision {}, withdrawn {reason}: run `identity-migrate rollback {back_to}` (it undoes the withdrawn revisions and keeps every row), then `identity-migrate migrate`",
                current.join(", ")
            ),
            ResolveError::NotAnAncestor { target, current } => write!(
                f,
                "cannot roll back to {target}: it is not an ancestor of the current revision ({}); nothing was changed",
                if current.is_empty() { "base".to_owned() } else { current.join(", ") }
            ),
            ResolveError::BadTarget(t) => write!(
                f,
                "cannot read target {t:?}: use a revision id or prefix, head, heads, base, +N, -N or <id>+N"
            ),
        }
    }
}

impl std::error::Error for ResolveError {}

/// Revisions that were released and then withdrawn: rewritten under new ids rather than
/// reverted, because the new ones reach the same place from their common ancestor without the
/// detour. A database that applied them is neither pending nor from a newer version: it is told
/// so, and rolled back down the chain it actually ran, then migrated on the current one.
#[derive(Debug, Clone)]
pub struct Withdrawal {
    /// The chain as it was released, withdrawn revisions and their ancestors, unchanged: the
    /// downgrades that database needs, and the checksums it recorded.
    pub released: RevisionGraph,
    /// The last revision the released chain shares with the current one.
    pub back_to: String,
    /// When and why, completing "withdrawn ...", e.g. "in identity-migrate 0.2.0 (README,
    /// Changelog)".
    pub reason: String,
}

impl Withdrawal {
    /// The withdrawn revisions among `current` when every revision of `current` that `graph`
    /// lacks is one of them, so that the database is at a withdrawn revision and nowhere
    /// unknown; `None` otherwise.
    pub fn withdrawn_among(&self, graph: &RevisionGraph, current: &Heads) -> Option<Vec<String>> {
        let unknown: Vec<String> = current
            .iter()
            .filter(|id| graph.get(id).is_none())
            .cloned()
            .collect();
        let all_released = unknown.iter().all(|id| self.released.get(id).is_some());
        (!unknown.is_empty() && all_released).then_some(unknown)
    }

    /// [`RevisionGraph::applied`] on `graph`, with a database at a withdrawn revision reported
    /// as [`ResolveError::Withdrawn`] rather than as unknown.
    pub fn applied(
        &self,
        graph: &RevisionGraph,
        current: &Heads,
    ) -> Result<BTreeSet<String>, ResolveError> {
        graph
            .applied(current)
            .map_err(|e| match self.withdrawn_among(graph, current) {
                Some(ids) => self.error(ids),
                None => e,
            })
    }

    /// The error that tells the operator the way forward.
    pub fn error(&self, current: Vec<String>) -> ResolveError {
        ResolveError::Withdrawn {
            current,
            reason: self.reason.clone(),
            back_to: self.back_to.clone(),
        }
    }
}

/// One step of a plan: apply or undo one revision, and the version-table change it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The revision.
    pub revision: String,
    /// Apply or undo.
    pub direction: Direction,
    /// The database's heads before the step.
    pub heads_before: Heads,
    /// The database's heads after the step.
    pub heads_after: Heads,
}

impl RevisionGraph {
    /// Validates the revisions and orders them oldest first.
    ///
    /// Among revisions whose order the graph does not fix, the order they were given in wins, so
    /// the same list always gives the same order.
    pub fn new(revisions: Vec<Revision>) -> Result<Self, GraphError> {
        let mut index = HashMap::with_capacity(revisions.len());
        for (i, r) in revisions.iter().enumerate() {
            if r.id.is_empty() || !r.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(GraphError::InvalidId(r.id.clone()));
            }
            if index.insert(r.id.clone(), i).is_some() {
                return Err(GraphError::DuplicateId(r.id.clone()));
            }
        }
        let mut parents = vec![Vec::new(); revisions.len()];
        let mut children = vec![Vec::new(); revisions.len()];
        for (i, r) in revisions.iter().enumerate() {
            for d in &r.down {
                let Some(&p) = index.get(d) else {
                    return Err(GraphError::UnknownDownRevision {
                        revision: r.id.clone(),
                        down: d.clone(),
                    });
                };
                parents[i].push(p);
                children[p].push(i);
            }
        }
        // Kahn's algorithm; the ready set is ordered by input position for a stable result.
        let mut pending: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> =
            (0..revisions.len()).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(revisions.len());
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &c in &children[i] {
                pending[c] -= 1;
                if pending[c] == 0 {
                    ready.insert(c);
                }
            }
        }
        if order.len() != revisions.len() {
            let stuck = (0..revisions.len())
                .filter(|&i| pending[i] > 0)
                .map(|i| revisions[i].id.clone())
                .collect();
            return Err(GraphError::Cycle(stuck));
        }
        let mut slots: Vec<Option<Revision>> = revisions.into_iter().map(Some).collect();
        let revisions: Vec<Revision> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let index: HashMap<String, usize> = revisions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut parents = vec![Vec::new(); revisions.len()];
        let mut children = vec![Vec::new(); revisions.len()];
        for (i, r) in revisions.iter().enumerate() {
            for d in &r.down {
                let p = index[d];
                parents[i].push(p);
                children[p].push(i);
            }
        }
        Ok(RevisionGraph {
            revisions,
            index,
            parents,
            children,
        })
    }

    /// Every revision, oldest first (a topological order).
    pub fn revisions(&self) -> &[Revision] {
        &self.revisions
    }

    /// The revision with exactly this id.
    pub fn get(&self, id: &str) -> Option<&Revision> {
        self.index.get(id).map(|&i| &self.revisions[i])
    }

    /// Whether the graph has no revisions.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    /// Revisions that no other revision follows.
    pub fn heads(&self) -> Vec<&str> {
        (0..self.revisions.len())
            .filter(|&i| self.children[i].is_empty())
            .map(|i| self.revisions[i].id.as_str())
            .collect()
    }

    /// Revisions that follow nothing.
    pub fn roots(&self) -> Vec<&str> {
        (0..self.revisions.len())
            .filter(|&i| self.parents[i].is_empty())
            .map(|i| self.revisions[i].id.as_str())
            .collect()
    }

    /// The ids of the revisions that directly follow `id`.
    pub fn children_of(&self, id: &str) -> Vec<&str> {
        self.index.get(id).map_or_else(Vec::new, |&i| {
            self.children[i]
                .iter()
                .map(|&c| self.revisions[c].id.as_str())
                .collect()
        })
    }

    /// Checks that the database's recorded heads are known, and returns every applied revision.
    pub fn applied(&self, current: &Heads) -> Result<BTreeSet<String>, ResolveError> {
        let unknown: Vec<String> = current
            .iter()
            .filter(|id| !self.index.contains_key(*id))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(ResolveError::UnknownCurrent(unknown));
        }
        let mask = self.closure(current.iter().map(|id| self.index[id]));
        Ok(self.ids_of(&mask))
    }

    /// Resolves a target as the command line gives it, against the database's current heads.
    pub fn resolve(&self, target: &str, current: &Heads) -> Result<Target, ResolveError> {
        let target = target.trim();
        if self.revisions.is_empty() {
            return match target {
                "base" | "head" | "heads" => Ok(Target::Base),
                _ => Err(ResolveError::Empty),
            };
        }
        match target {
            "base" => return Ok(Target::Base),
            "heads" => {
                return Ok(Target::Revisions(
                    self.heads().into_iter().map(str::to_owned).collect(),
                ))
            }
            "head" => return self.single_head_id().map(one),
            _ => {}
        }
        if let Some(rest) = target
            .strip_prefix('+')
            .or_else(|| target.strip_prefix('-'))
        {
            let n = parse_steps(target, rest)?;
            let start = self.single_current(current)?;
            let up = target.starts_with('+');
            return self.walk(target, start, n, up);
        }
        if let Some(pos) = target.rfind(['+', '-']).filter(|&p| p > 0) {
            let (base, rest) = target.split_at(pos);
            let n = parse_steps(target, &rest[1..])?;
            let start = match base {
                "head" => Some(self.index[&self.single_head_id()?]),
                "base" => None,
                _ => Some(self.index[&self.resolve_id(base)?]),
            };
            return self.walk(target, start, n, rest.starts_with('+'));
        }
        self.resolve_id(target).map(one)
    }

    /// Resolves a full id or a unique prefix of at least 4 characters.
    pub fn resolve_id(&self, given: &str) -> Result<String, ResolveError> {
        if self.index.contains_key(given) {
            return Ok(given.to_owned());
        }
        if given.len() < 4 {
            return Err(
                if self.revisions.iter().any(|r| r.id.starts_with(given)) && !given.is_empty() {
                    ResolveError::PrefixTooShort(given.to_owned())
                } else {
                    ResolveError::Unknown(given.to_owned())
                },
            );
        }
        let candidates: Vec<String> = self
            .revisions
            .iter()
            .filter(|r| r.id.starts_with(given))
            .map(|r| r.id.clone())
            .collect();
        match candidates.len() {
            0 => Err(ResolveError::Unknown(given.to_owned())),
            1 => Ok(candidates.into_iter().next().unwrap_or_default()),
            _ => Err(ResolveError::Ambiguous {
                prefix: given.to_owned(),
                candidates,
            }),
        }
    }

    /// The steps that bring a database at `current` to `target` by applying revisions.
    ///
    /// Revisions already applied are skipped; a target below the current state gives no steps.
    pub fn plan_upgrade(
        &self,
        current: &Heads,
        target: &Target,
    ) -> Result<Vec<Step>, ResolveError> {
        let applied = self.closure(self.known_indices(current)?);
        let wanted = match target {
            Target::Base => vec![false; self.revisions.len()],
            Target::Revisions(ids) => self.closure(self.known_indices(ids)?),
        };
        let mut heads = current.clone();
        let mut steps = Vec::new();
        for i in (0..self.revisions.len()).filter(|&i| wanted[i] && !applied[i]) {
            let id = &self.revisions[i].id;
            let before = heads.clone();
            for &p in &self.parents[i] {
                heads.remove(&self.revisions[p].id);
            }
            heads.insert(id.clone());
            steps.push(Step {
                revision: id.clone(),
                direction: Direction::Up,
                heads_before: before,
                heads_after: heads.clone(),
            });
        }
        Ok(steps)
    }

    /// The steps that bring a database at `current` down to `target` by undoing revisions.
    ///
    /// Only the applied descendants of the target are undone (other branches stay as they are);
    /// a target that is not applied is an error.
    pub fn plan_downgrade(
        &self,
        current: &Heads,
        target: &Target,
    ) -> Result<Vec<Step>, ResolveError> {
        let mut applied = self.closure(self.known_indices(current)?);
        let undo: Vec<usize> = match target {
            Target::Base => (0..self.revisions.len()).filter(|&i| applied[i]).collect(),
            Target::Revisions(ids) => {
                let targets = self.known_indices(ids)?;
                if let Some(&missing) = targets.iter().find(|&&t| !applied[t]) {
                    return Err(ResolveError::NotAnAncestor {
                        target: self.revisions[missing].id.clone(),
                        current: current.iter().cloned().collect(),
                    });
                }
                let below = self.descendants(&targets);
                // With several targets, one may lie below another: what any target needs stays.
                let keep = self.closure(targets.iter().copied());
                (0..self.revisions.len())
                    .filter(|&i| applied[i] && below[i] && !keep[i])
                    .collect()
            }
        };
        let mut heads = current.clone();
        let mut steps = Vec::new();
        for &i in undo.iter().rev() {
            let id = &self.revisions[i].id;
            let before = heads.clone();
            applied[i] = false;
            heads.remove(id);
            for &p in &self.parents[i] {
                if !self.children[p].iter().any(|&c| applied[c]) {
                    heads.insert(self.revisions[p].id.clone());
                }
            }
            steps.push(Step {
                revision: id.clone(),
                direction: Direction::Down,
                heads_before: before,
                heads_after: heads.clone(),
            });
        }
        Ok(steps)
    }

    fn single_head_id(&self) -> Result<String, ResolveError> {
        let heads = self.heads();
        match heads.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(ResolveError::Empty),
            many => Err(ResolveError::MultipleHeads(
                many.iter().map(|s| (*s).to_owned()).collect(),
            )),
        }
    }

    /// The one current revision (`None` at base) that a relative target starts from.
    fn single_current(&self, current: &Heads) -> Result<Option<usize>, ResolveError> {
        let known = self.known_indices(current)?;
        match known.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(ResolveError::CurrentNotSingle(
                current.iter().cloned().collect(),
            )),
        }
    }

    /// Walks `n` steps up (to children) or down (to parents), refusing branch points.
    fn walk(
        &self,
        target: &str,
        start: Option<usize>,
        n: usize,
        up: bool,
    ) -> Result<Target, ResolveError> {
        let mut at = start;
        for taken in 0..n {
            let next: Vec<usize> = match (at, up) {
                (None, true) => (0..self.revisions.len())
                    .filter(|&i| self.parents[i].is_empty())
                    .collect(),
                (None, false) => Vec::new(),
                (Some(i), true) => self.children[i].clone(),
                (Some(i), false) => self.parents[i].clone(),
            };
            at = match next.as_slice() {
                [one] => Some(*one),
                // One step down from a root is base.
                [] if !up && at.is_some() => None,
                [] => {
                    return Err(ResolveError::OutOfRange {
                        target: target.to_owned(),
                        available: taken,
                    })
                }
                many => {
                    return Err(ResolveError::AmbiguousStep {
                        from: at
                            .map_or_else(|| "base".to_owned(), |i| self.revisions[i].id.clone()),
                        candidates: many.iter().map(|&i| self.revisions[i].id.clone()).collect(),
                    })
                }
            };
        }
        Ok(match at {
            None => Target::Base,
            Some(i) => one(self.revisions[i].id.clone()),
        })
    }

    fn known_indices(&self, ids: &Heads) -> Result<Vec<usize>, ResolveError> {
        let unknown: Vec<String> = ids
            .iter()
            .filter(|id| !self.index.contains_key(*id))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(ResolveError::UnknownCurrent(unknown));
        }
        Ok(ids.iter().map(|id| self.index[id]).collect())
    }

    /// The given revisions and all their ancestors, as a mask over positions.
    fn closure(&self, start: impl IntoIterator<Item = usize>) -> Vec<bool> {
        self.reach(start, &self.parents)
    }

    /// Strict descendants of the given revisions, as a mask over positions.
    fn descendants(&self, start: &[usize]) -> Vec<bool> {
        self.reach(
            start.iter().flat_map(|&i| self.children[i].iter().copied()),
            &self.children,
        )
    }

    fn reach(&self, start: impl IntoIterator<Item = usize>, edges: &[Vec<usize>]) -> Vec<bool> {
        let mut mask = vec![false; self.revisions.len()];
        let mut queue: VecDeque<usize> = start.into_iter().collect();
        while let Some(i) = queue.pop_front() {
            if !mask[i] {
                mask[i] = true;
                queue.extend(edges[i].iter().copied());
            }
        }
        mask
    }

    fn ids_of(&self, mask: &[bool]) -> BTreeSet<String> {
        mask.iter()
            .enumerate()
            .filter(|(_, &m)| m)
            .map(|(i, _)| self.revisions[i].id.clone())
            .collect()
    }
}

fn one(id: String) -> Target {
    Target::Revisions(BTreeSet::from([id]))
}

fn parse_steps(target: &str, digits: &str) -> Result<usize, ResolveError> {
    digits
        .parse::<usize>()
        .map_err(|_| ResolveError::BadTarget(target.to_owned()))
}
