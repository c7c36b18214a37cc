//! A revision: an id, its place in the graph, and the ops that move the schema up and down.

use crate::op::Op;

/// One revision of the schema.
///
/// Revisions come from anywhere (the identity crate, a test, a benchmark): the engine only needs
/// this value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// Twelve lowercase hex digits, as Alembic writes them.
    pub id: String,
    /// The revisions this one follows: none for a root, two or more for a merge.
    pub down: Vec<String>,
    /// What it does, in one line.
    pub message: String,
    /// When it was written (ISO 8601 date or date-time).
    pub created: String,
    /// Ops that apply it.
    pub upgrade: Vec<Op>,
    /// Ops that undo it, applied to the schema the upgrade left.
    pub downgrade: Vec<Op>,
    /// Lint findings accepted on purpose, each with its reason (see [`crate::lint`]).
    ///
    /// Not part of the checksum: an allowance changes what a reviewer accepted, not what runs
    /// against the database, so adding one to an applied revision must not read as an edit of
    /// it.
    pub allowances: Vec<Allowance>,
    /// Whether an executor that runs phases may commit this revision table by table: each
    /// group of consecutive ops that blocks writes to one table in a transaction of its own,
    /// resumable like any phased revision. For a revision that changes many tables a service
    /// writes to, so that no transaction holds more than one of them (see
    /// [`Revision::table_by_table`]). Not part of the checksum: what runs is the same.
    pub table_by_table: bool,
}

/// A lint rule accepted for one revision, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    /// The rule's id, as lint prints it (`table-rewrite`).
    pub rule: String,
    /// Why the danger is accepted; never empty.
    pub reason: String,
}

impl Revision {
    /// A revision with no ops yet.
    pub fn new(id: &str, down: &[&str], message: &str) -> Self {
        Revision {
            id: id.to_owned(),
            down: down.iter().map(|d| (*d).to_owned()).collect(),
            message: message.to_owned(),
            created: String::new(),
            upgrade: Vec::new(),
            downgrade: Vec::new(),
            allowances: Vec::new(),
            table_by_table: false,
        }
    }

    /// Accepts the findings of lint rule `rule` in this revision, for the reason `why` (which
    /// [`crate::lint::check_allowances`] requires, with a rule id it knows).
    pub fn allow(mut self, rule: &str, why: &str) -> Self {
        self.allowances.push(Allowance {
            rule: rule.to_owned(),
            reason: why.to_owned(),
        });
        self
    }

    /// Lets an executor that runs phases commit this revision table by table (see the field):
    /// the revision is then no longer all or nothing, but every table's part is, and a run
    /// that stopped between them resumes where it stopped. Its ops should be grouped by table.
    pub fn table_by_table(mut self) -> Self {
        self.table_by_table = true;
        self
    }

    /// Sets the creation date.
    pub fn created(mut self, created: &str) -> Self {
        self.created = created.to_owned();
        self
    }

    /// Sets the upgrade ops.
    pub fn upgrade(mut self, ops: Vec<Op>) -> Self {
        self.upgrade = ops;
        self
    }

    /// Sets the downgrade ops.
    pub fn downgrade(mut self, ops: Vec<Op>) -> Self {
        self.downgrade = ops;
        self
    }

    /// The ops of one direction.
    pub fn ops(&self, direction: Direction) -> &[Op] {
        match direction {
            Direction::Up => &self.upgrade,
            Direction::Down => &self.downgrade,
        }
    }

    /// Whether every op of that direction can run inside a transaction.
    pub fn transactional(&self, direction: Direction) -> bool {
        self.ops(direction).iter().all(Op::transactional)
    }
}

/// Which way a step moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Apply a revision.
    Up,
    /// Undo a revision.
    Down,
}

impl Direction {
    /// `up` or `down`, as the history table records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Whether `id` has the form of a revision id: 12 lowercase hex digits.
///
/// Other forms (longer ids, words) are accepted by the graph too, as Alembic accepts them; this is
/// what `revision` generates.
pub fn is_canonical_id(id: &str) -> bool {
    id.len() == 12
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
