//! Diff: the ops that turn one schema into another, and the differences a drift report lists.
//!
//! [`diff`] serves autogenerate (`diff(schema_at(head), models())` gives a new revision's ops)
//! and [`differences`] serves drift detection (the live database against `schema_at(current)`).
//! Both are pure functions of two [`Schema`] values.
//!
//! `diff` orders its ops so that the fold accepts them one after the other, and so that
//! PostgreSQL does too where it is stricter than the fold (a foreign key depends on the key it
//! references; a function on its schema). Its phases, in order:
//!
//! 1. drop triggers that go or change, or whose function is dropped;
//! 2. drop foreign keys that go, change, reference a dropped table, or depend on a primary key,
//!    unique constraint or unique index that is dropped; then the other constraints that go or
//!    change;
//! 3. drop indexes that go or change;
//! 4. drop tables that go, referring tables before the tables they refer to;
//! 5. drop functions that go or change;
//! 6. create schemas; move tables between schemas (`SetTableSchema`); drop schemas that go;
//! 7. create functions that are new or changed;
//! 8. create new tables with their indexes and triggers (a foreign key that cannot be created
//!    with its table, because what it references does not exist yet, is added in phase 13);
//! 9. add columns; 10. alter columns; 11. drop columns;
//! 12. add primary keys, unique and CHECK constraints; create indexes;
//! 13. add foreign keys (after every key they may reference, as `pg_dump` orders them);
//!     then validate the constraints `from` holds `NOT VALID` that `to` holds validated;
//! 14. create triggers.
//!
//! What it does not do: detect renames (a renamed table or column is dropped and added), or
//! reorder columns. A column is added at the end of its table, as `ALTER TABLE .. ADD COLUMN`
//! does, so when `to` places a new column before existing ones, or orders existing columns
//! differently, the result differs from `to` in column order only, and [`differences`] reports
//! it as a changed table. Reordering would mean dropping and re-adding columns, losing their
//! data, which no generated revision should do silently: the models test then asks the author
//! to write the model's columns in the order the database has them.

use crate::render::postgres::{default_sql, type_sql};
use crate::schema::{
    Column, Constraint, ConstraintKind, DefaultExpr, ForeignKey, Index, IndexKey,
    ReferentialAction, Schema, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};
use crate::{ColumnChange, Op};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The ops that turn `from` into `to`, in an order the fold (and PostgreSQL) accepts.
///
/// `apply_all(&mut from.clone(), &diff(from, to))` succeeds and yields `to`, up to the column
/// order described in the [module documentation](self), for any `to` the fold can build.
pub fn diff(from: &Schema, to: &Schema) -> Vec<Op> {
    Planner::new(from, to).ops()
}

/// A pair of tables that survives the change: same name, or moved to another database schema.
struct Kept<'a> {
    from: &'a Table,
    to: &'a Table,
}

/// Which objects of `from` are dropped, decided once so that every phase agrees.
struct Planner<'a> {
    from: &'a Schema,
    to: &'a Schema,
    /// Tables moved between database schemas, from-name to to-name, in an order that works.
    moves: Vec<(TableName, TableName)>,
    /// The same moves, for lookups.
    move_map: BTreeMap<TableName, TableName>,
    /// Surviving tables, keyed by their name in `to`.
    kept: BTreeMap<TableName, Kept<'a>>,
    /// Tables of `from` that go, in the order they are dropped.
    dropped_tables: Vec<&'a Table>,
    /// Tables of `to` that are created.
    created_tables: Vec<&'a Table>,
    /// Functions dropped (they go or change).
    dropped_functions: BTreeSet<TableName>,
    /// Constraints dropped explicitly, by from-name of their table.
    dropped_constraints: BTreeSet<(TableName, String)>,
    /// Foreign keys dropped explicitly (a subset of `dropped_constraints`), in drop order.
    dropped_fks: Vec<(TableName, String)>,
    /// Indexes dropped explicitly, by from-name of their table.
    dropped_indexes: BTreeSet<(TableName, String)>,
}

impl<'a> Planner<'a> {
    fn new(from: &'a Schema, to: &'a Schema) -> Self {
        let moves = find_moves(from, to);
        let move_map: BTreeMap<TableName, TableName> = moves.iter().cloned().collect();
        let mut kept = BTreeMap::new();
        let mut dropped = Vec::new();
        for (name, table) in &from.tables {
            let to_name = move_map.get(name).unwrap_or(name);
            match to.tables.get(to_name) {
                Some(to_table) => {
                    kept.insert(
                        to_name.clone(),
                        Kept {
                            from: table,
                            to: to_table,
                        },
                    );
                }
                None => dropped.push(table),
            }
        }
        let created_tables = to
            .tables
            .values()
            .filter(|t| !kept.contains_key(&t.name))
            .collect();
        let dropped_functions = from
            .functions
            .values()
            .filter(|f| to.functions.get(&f.name) != Some(f))
            .map(|f| f.name.clone())
            .collect();
        let mut planner = Planner {
            from,
            to,
            moves,
            move_map,
            kept,
            dropped_tables: Vec::new(),
            created_tables,
            dropped_functions,
            dropped_constraints: BTreeSet::new(),
            dropped_fks: Vec::new(),
            dropped_indexes: BTreeSet::new(),
        };
        planner.plan_key_drops();
        planner.plan_fk_drops(&dropped);
        planner.dropped_tables = planner.drop_order(dropped);
        planner
    }

    /// Primary keys, unique and CHECK constraints, and indexes of surviving tables that go or
    /// change.
    fn plan_key_drops(&mut self) {
        for kept in self.kept.values() {
            let name = &kept.from.name;
            for c in kept.from.constraints.values() {
                if !matches!(c.kind, ConstraintKind::ForeignKey(_))
                    && kept.to.constraints.get(&c.name) != Some(c)
                {
                    self.dropped_constraints
                        .insert((name.clone(), c.name.clone()));
                }
            }
            for index in kept.from.indexes.values() {
                if kept.to.indexes.get(&index.name) != Some(index) {
                    self.dropped_indexes
                        .insert((name.clone(), index.name.clone()));
                }
            }
        }
    }

    /// Whether a key (constraint or index) that `fk` may depend on is dropped. PostgreSQL ties a
    /// foreign key to the unique index behind the referenced columns, and refuses to drop that
    /// index while the foreign key stands.
    fn key_dropped(&self, fk: &ForeignKey) -> bool {
        let Some(target) = self.from.tables.get(&fk.ref_table) else {
            return false;
        };
        matching_keys(target, &fk.ref_columns)
            .iter()
            .any(|key| match key {
                Key::Constraint(c) => self
                    .dropped_constraints
                    .contains(&(target.name.clone(), (*c).to_owned())),
                Key::Index(i) => self
                    .dropped_indexes
                    .contains(&(target.name.clone(), (*i).to_owned())),
            })
    }

    /// Foreign keys of surviving tables that go, change or lose their key; foreign keys of
    /// dropped tables that lose their key, or that tie dropped tables in a cycle.
    fn plan_fk_drops(&mut self, dropped: &[&'a Table]) {
        let mut fks = Vec::new();
        for kept in self.kept.values() {
            for c in kept.from.constraints.values() {
                let ConstraintKind::ForeignKey(fk) = &c.kind else {
                    continue;
                };
                let unchanged = kept.to.constraints.get(&c.name) == Some(&self.map_constraint(c));
                if !unchanged || self.key_dropped(fk) {
                    fks.push((kept.from.name.clone(), c.name.clone()));
                }
            }
        }
        for table in dropped {
            for c in table.constraints.values() {
                if let ConstraintKind::ForeignKey(fk) = &c.kind {
                    if fk.ref_table != table.name && self.key_dropped(fk) {
                        fks.push((table.name.clone(), c.name.clone()));
                    }
                }
            }
        }
        for fk in fks {
            self.dropped_constraints.insert(fk.clone());
            self.dropped_fks.push(fk);
        }
    }

    /// Orders the dropped tables so that no table is dropped while another one still refers to
    /// it. A cycle of foreign keys is broken by dropping the foreign keys that point at the
    /// first table of the cycle (by name) explicitly, in phase 2.
    fn drop_order(&mut self, dropped: Vec<&'a Table>) -> Vec<&'a Table> {
        let mut remaining: BTreeMap<TableName, &'a Table> =
            dropped.into_iter().map(|t| (t.name.clone(), t)).collect();
        let mut order = Vec::new();
        while let Some(first) = remaining.keys().next().cloned() {
            let referrers = |target: &TableName, remaining: &BTreeMap<TableName, &Table>| {
                remaining
                    .values()
                    .flat_map(|t| t.constraints.values().map(move |c| (t, c)))
                    .filter(|(t, c)| {
                        matches!(&c.kind, ConstraintKind::ForeignKey(fk)
                            if &fk.ref_table == target && &t.name != target)
                    })
                    .map(|(t, c)| (t.name.clone(), c.name.clone()))
                    .filter(|key| !self.dropped_constraints.contains(key))
                    .collect::<Vec<_>>()
            };
            let free = remaining
                .keys()
                .find(|name| referrers(name, &remaining).is_empty())
                .cloned();
            let next = match free {
                Some(name) => name,
                None => {
                    for key in referrers(&first, &remaining) {
                        self.dropped_constraints.insert(key.clone());
                        self.dropped_fks.push(key);
                    }
                    first
                }
            };
            if let Some(table) = remaining.remove(&next) {
                order.push(table);
            }
        }
        order
    }

    /// A constraint of `from` as it reads after the moves (its foreign key follows a moved
    /// table, as the database's does).
    fn map_constraint(&self, c: &Constraint) -> Constraint {
        map_constraint(c, &self.move_map)
    }

    /// Whether a foreign key of a new table can be created with the table: what it references
    /// exists by phase 8 (the table itself, or a surviving table whose referenced columns and
    /// key are already there).
    fn fk_ready_with_table(&self, table: &Table, fk: &ForeignKey) -> bool {
        if fk.ref_table == table.name {
            return true;
        }
        let Some(kept) = self.kept.get(&fk.ref_table) else {
            return false;
        };
        let columns_there = fk
            .ref_columns
            .iter()
            .all(|c| kept.from.find_column(c).is_some());
        let keys = matching_keys(kept.to, &fk.ref_columns);
        columns_there && (keys.is_empty() || keys.iter().any(|key| self.key_kept(kept, key)))
    }

    /// Whether a key of a surviving table stays in place from the start.
    fn key_kept(&self, kept: &Kept<'_>, key: &Key<'_>) -> bool {
        let name = &kept.from.name;
        match key {
            Key::Constraint(c) => {
                kept.from.constraints.contains_key(*c)
                    && !self
                        .dropped_constraints
                        .contains(&(name.clone(), (*c).to_owned()))
            }
            Key::Index(i) => {
                kept.from.indexes.contains_key(*i)
                    && !self
                        .dropped_indexes
                        .contains(&(name.clone(), (*i).to_owned()))
            }
        }
    }

    fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        let kept_by_from: BTreeMap<&TableName, &Kept<'_>> =
            self.kept.values().map(|k| (&k.from.name, k)).collect();

        // 1. Triggers first: they hold on to their functions and tables.
        for kept in kept_by_from.values() {
            for trigger in kept.from.triggers.values() {
                if self.trigger_dropped(kept, trigger) {
                    ops.push(Op::DropTrigger {
                        table: kept.from.name.clone(),
                        name: trigger.name.clone(),
                    });
                }
            }
        }
        // 2. Foreign keys before the keys and tables they depend on.
        for (table, name) in &self.dropped_fks {
            ops.push(Op::DropConstraint {
                table: table.clone(),
                name: name.clone(),
            });
        }
        let fks: BTreeSet<&(TableName, String)> = self.dropped_fks.iter().collect();
        for key in self.dropped_constraints.iter().filter(|k| !fks.contains(k)) {
            ops.push(Op::DropConstraint {
                table: key.0.clone(),
                name: key.1.clone(),
            });
        }
        // 3.
        for (table, name) in &self.dropped_indexes {
            ops.push(Op::DropIndex {
                table: table.clone(),
                name: name.clone(),
                concurrently: false,
            });
        }
        // 4.
        for table in &self.dropped_tables {
            ops.push(Op::DropTable {
                table: table.name.clone(),
            });
        }
        // 5. Functions once no trigger calls them.
        for name in &self.dropped_functions {
            ops.push(Op::DropFunction { name: name.clone() });
        }
        // 6. A moved table needs its new schema and must leave its old one before that goes.
        for name in self.to.schemas.difference(&self.from.schemas) {
            ops.push(Op::CreateSchema { name: name.clone() });
        }
        for (table, to) in &self.moves {
            ops.push(Op::SetTableSchema {
                table: table.clone(),
                schema: to.schema.clone(),
            });
        }
        for name in self.from.schemas.difference(&self.to.schemas) {
            ops.push(Op::DropSchema { name: name.clone() });
        }
        // 7.
        for function in self.to.functions.values() {
            if self.from.functions.get(&function.name) != Some(function) {
                ops.push(Op::CreateFunction(function.clone()));
            }
        }
        // 8. New tables, holding back the foreign keys whose target is not there yet.
        let mut later_fks = Vec::new();
        for table in &self.created_tables {
            let mut created = (*table).clone();
            created.constraints.retain(|_, c| match &c.kind {
                ConstraintKind::ForeignKey(fk) if !self.fk_ready_with_table(table, fk) => {
                    later_fks.push((table.name.clone(), c.clone()));
                    false
                }
                _ => true,
            });
            ops.push(Op::CreateTable(created));
        }
        // 9-11. Columns: added, altered, then dropped (the fold has already dropped whatever
        // depended on a dropped column, explicitly, in phases 2 and 3).
        for kept in self.kept.values() {
            for column in &kept.to.columns {
                if kept.from.find_column(&column.name).is_none() {
                    ops.push(Op::AddColumn {
                        table: kept.to.name.clone(),
                        column: column.clone(),
                    });
                }
            }
        }
        for kept in self.kept.values() {
            for old in &kept.from.columns {
                if let Some(new) = kept.to.find_column(&old.name) {
                    let change = column_change(old, new);
                    if change != ColumnChange::default() {
                        ops.push(Op::AlterColumn {
                            table: kept.to.name.clone(),
                            column: old.name.clone(),
                            change,
                        });
                    }
                }
            }
        }
        for kept in self.kept.values() {
            for old in &kept.from.columns {
                if kept.to.find_column(&old.name).is_none() {
                    ops.push(Op::DropColumn {
                        table: kept.to.name.clone(),
                        column: old.name.clone(),
                    });
                }
            }
        }
        // 12. Keys and checks, then indexes.
        let added = |kept: &Kept<'_>, c: &Constraint| {
            !kept.from.constraints.contains_key(&c.name)
                || self
                    .dropped_constraints
                    .contains(&(kept.from.name.clone(), c.name.clone()))
        };
        for kept in self.kept.values() {
            for c in kept.to.constraints.values() {
                if !matches!(c.kind, ConstraintKind::ForeignKey(_)) && added(kept, c) {
                    ops.push(add_constraint(&kept.to.name, c));
                }
            }
        }
        for kept in self.kept.values() {
            for index in kept.to.indexes.values() {
                let new = !kept.from.indexes.contains_key(&index.name)
                    || self
                        .dropped_indexes
                        .contains(&(kept.from.name.clone(), index.name.clone()));
                if new {
                    ops.push(Op::CreateIndex {
                        table: kept.to.name.clone(),
                        index: index.clone(),
                        concurrently: false,
                    });
                }
            }
        }
        // 13. Foreign keys, now that every table, column and key they may reference exists.
        for kept in self.kept.values() {
            for c in kept.to.constraints.values() {
                if matches!(c.kind, ConstraintKind::ForeignKey(_)) && added(kept, c) {
                    ops.push(add_constraint(&kept.to.name, c));
                }
            }
        }
        for (table, c) in &later_fks {
            ops.push(add_constraint(table, c));
        }
        // Constraints kept as they are that `to` holds validated and `from` does not yet.
        for kept in self.kept.values() {
            for name in &kept.from.not_valid {
                let validated = kept
                    .to
                    .constraints
                    .get(name)
                    .is_some_and(|c| !added(kept, c) && !kept.to.not_valid.contains(name));
                if validated {
                    ops.push(Op::ValidateConstraint {
                        table: kept.to.name.clone(),
                        name: name.clone(),
                    });
                }
            }
        }
        // 14.
        for kept in self.kept.values() {
            for trigger in kept.to.triggers.values() {
                let new = match kept.from.triggers.get(&trigger.name) {
                    None => true,
                    Some(old) => self.trigger_dropped(kept, old),
                };
                if new {
                    ops.push(Op::CreateTrigger {
                        table: kept.to.name.clone(),
                        trigger: trigger.clone(),
                    });
                }
            }
        }
        ops
    }

    /// A trigger of a surviving table is dropped when it goes, changes, or calls a function
    /// that is dropped (PostgreSQL refuses to drop a function a trigger calls).
    fn trigger_dropped(&self, kept: &Kept<'_>, trigger: &Trigger) -> bool {
        kept.to.triggers.get(&trigger.name) != Some(trigger)
            || self.dropped_functions.contains(&trigger.function)
    }
}

fn add_constraint(table: &TableName, c: &Constraint) -> Op {
    Op::AddConstraint {
        table: table.clone(),
        constraint: c.clone(),
        not_valid: false,
    }
}

/// The fields that differ between two versions of a column.
fn column_change(old: &Column, new: &Column) -> ColumnChange {
    ColumnChange {
        // No USING: the author adds the conversion when the cast is not implicit.
        ty: (old.ty != new.ty).then(|| (new.ty.clone(), None)),
        nullable: (old.nullable != new.nullable).then_some(new.nullable),
        default: (old.default != new.default).then(|| new.default.clone()),
    }
}

/// A key a foreign key can rest on.
enum Key<'t> {
    /// A primary key or unique constraint, by name.
    Constraint(&'t str),
    /// A unique, non-partial index on plain columns, by name.
    Index(&'t str),
}

/// The keys of `table` over exactly the columns `columns` (in any order), which PostgreSQL
/// accepts as the target of a foreign key.
fn matching_keys<'t>(table: &'t Table, columns: &[String]) -> Vec<Key<'t>> {
    let wanted: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
    let constraints = table.constraints.values().filter_map(|c| {
        let set: BTreeSet<&str> = c.kind.columns().iter().map(String::as_str).collect();
        (c.kind.has_index() && set == wanted).then_some(Key::Constraint(c.name.as_str()))
    });
    let indexes = table.indexes.values().filter_map(|i| {
        let plain = i.keys.iter().all(|k| matches!(k, IndexKey::Column(_)));
        let set: BTreeSet<&str> = i.columns().collect();
        (i.unique && i.predicate.is_none() && plain && set == wanted)
            .then_some(Key::Index(i.name.as_str()))
    });
    constraints.chain(indexes).collect()
}

fn map_constraint(c: &Constraint, moves: &BTreeMap<TableName, TableName>) -> Constraint {
    let mut c = c.clone();
    if let ConstraintKind::ForeignKey(fk) = &mut c.kind {
        if let Some(to) = moves.get(&fk.ref_table) {
            fk.ref_table = to.clone();
        }
    }
    c
}

/// Tables that leave one database schema and appear, under the same name and otherwise
/// identical, in another, in an order in which each move finds its relation names free.
///
/// A candidate is dropped from the set when it is not identical once the other moves are
/// applied (its foreign keys follow moved tables), or when it sits in a cycle of moves whose
/// index names clash (two tables swapping schemas with like-named indexes); both then become a
/// drop and a create. Dropping one candidate can disqualify another, so this runs to a fixpoint.
fn find_moves(from: &Schema, to: &Schema) -> Vec<(TableName, TableName)> {
    let gone: Vec<&TableName> = from
        .tables
        .keys()
        .filter(|n| !to.tables.contains_key(*n))
        .collect();
    let came: Vec<&TableName> = to
        .tables
        .keys()
        .filter(|n| !from.tables.contains_key(*n))
        .collect();
    let mut moves: BTreeMap<TableName, TableName> = BTreeMap::new();
    for g in &gone {
        let targets: Vec<&&TableName> = came.iter().filter(|c| c.name == g.name).collect();
        let sources = gone.iter().filter(|o| o.name == g.name).count();
        if let ([target], 1) = (targets.as_slice(), sources) {
            moves.insert((*g).clone(), (**target).clone());
        }
    }
    loop {
        let before = moves.len();
        let snapshot = moves.clone();
        moves.retain(|f, t| {
            let (old, new) = (&from.tables[f], &to.tables[t]);
            old.columns == new.columns
                && old.indexes == new.indexes
                && old.triggers == new.triggers
                && old.constraints.len() == new.constraints.len()
                && old
                    .constraints
                    .values()
                    .all(|c| new.constraints.get(&c.name) == Some(&map_constraint(c, &snapshot)))
        });
        let ordered = order_moves(from, &moves);
        if ordered.len() == moves.len() && moves.len() == before {
            return ordered;
        }
        let keep: BTreeSet<TableName> = ordered.into_iter().map(|(f, _)| f).collect();
        moves.retain(|f, _| keep.contains(f));
    }
}

/// Orders moves so that a table moves into a schema only after the tables whose relation names
/// it would clash with have moved out. Moves caught in a cycle are left out.
fn order_moves(
    from: &Schema,
    moves: &BTreeMap<TableName, TableName>,
) -> Vec<(TableName, TableName)> {
    let relations = |t: &TableName| -> BTreeSet<&str> { from.tables[t].relation_names().collect() };
    let waits_for = |t: &TableName, u: &TableName| {
        t != u && u.schema == moves[t].schema && !relations(t).is_disjoint(&relations(u))
    };
    let mut pending: BTreeSet<&TableName> = moves.keys().collect();
    let mut order = Vec::new();
    while let Some(next) = pending
        .iter()
        .find(|t| !pending.iter().any(|u| waits_for(t, u)))
        .copied()
    {
        pending.remove(next);
        order.push((next.clone(), moves[next].clone()));
    }
    order
}

/// Whether a difference is something missing, something extra or something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Expected, but not there.
    Missing,
    /// There, but not expected.
    Extra,
    /// There in both, but not the same.
    Changed,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Missing => "missing",
            Change::Extra => "extra",
            Change::Changed => "changed",
        })
    }
}

/// The kind of object a difference is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// A database schema (namespace).
    Schema,
    /// A table (as a whole, or its column order).
    Table,
    /// A column of a table.
    Column,
    /// A primary key, unique, foreign key or CHECK constraint.
    Constraint,
    /// An index.
    Index,
    /// A trigger on a table.
    Trigger,
    /// A trigger function.
    Function,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Schema => "schema",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Constraint => "constraint",
            ObjectKind::Index => "index",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Function => "function",
        })
    }
}

/// One line of a drift report: an object that is missing, extra or changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Difference {
    /// Missing, extra or changed.
    pub change: Change,
    /// What kind of object.
    pub object: ObjectKind,
    /// Its qualified name: `users`, `legacy.users_simple`, `users.email`, `users.ix_users_email`.
    pub name: String,
    /// What it is (missing, extra) or what changed (`type varchar(255) -> text`); may be empty.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.change, self.object, self.name)?;
        match (self.detail.is_empty(), self.change) {
            (true, _) => Ok(()),
            (false, Change::Changed) => write!(f, ": {}", self.detail),
            (false, _) => write!(f, " ({})", self.detail),
        }
    }
}

/// What `actual` has that `expected` lacks, lacks that `expected` has, or has differently.
///
/// Empty exactly when `expected == actual`. Sorted by name, then kind of object, so a report is
/// stable. A missing or extra table is one line (its columns and indexes are not repeated); a
/// table whose columns are all there but in another order is a changed table.
pub fn differences(expected: &Schema, actual: &Schema) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut push = |change, object, name: String, detail: String| {
        out.push(Difference {
            change,
            object,
            name,
            detail,
        })
    };
    for s in expected.schemas.difference(&actual.schemas) {
        push(
            Change::Missing,
            ObjectKind::Schema,
            s.clone(),
            String::new(),
        );
    }
    for s in actual.schemas.difference(&expected.schemas) {
        push(Change::Extra, ObjectKind::Schema, s.clone(), String::new());
    }
    compare_maps(
        &expected.functions,
        &actual.functions,
        |name, change, old, new| {
            let detail = match (old, new) {
                (Some(_), Some(_)) => "body differs".to_owned(),
                _ => String::new(),
            };
            push(change, ObjectKind::Function, name.to_string(), detail);
        },
    );
    for (name, table) in &expected.tables {
        match actual.tables.get(name) {
            None => push(
                Change::Missing,
                ObjectKind::Table,
                name.to_string(),
                column_names(table),
            ),
            Some(other) => compare_tables(table, other, &mut push),
        }
    }
    for (name, table) in &actual.tables {
        if !expected.tables.contains_key(name) {
            push(
                Change::Extra,
                ObjectKind::Table,
                name.to_string(),
                column_names(table),
            );
        }
    }
    out.sort_by(|a, b| {
        (&a.name, a.object, a.change, &a.detail).cmp(&(&b.name, b.object, b.change, &b.detail))
    });
    out
}

/// `columns id, email`.
fn column_names(table: &Table) -> String {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    format!("columns {}", names.join(", "))
}

/// Calls `report(name, change, expected, actual)` for every key whose values differ.
fn compare_maps<K: Ord, V: PartialEq>(
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
    mut report: impl FnMut(&K, Change, Option<&V>, Option<&V>),
) {
    for (k, v) in expected {
        match actual.get(k) {
            None => report(k, Change::Missing, Some(v), None),
            Some(w) if w != v => report(k, Change::Changed, Some(v), Some(w)),
            Some(_) => {}
        }
    }
    for (k, w) in actual {
        if !expected.contains_key(k) {
            report(k, Change::Extra, None, Some(w));
        }
    }
}

fn compare_tables(
    expected: &Table,
    actual: &Table,
    push: &mut impl FnMut(Change, ObjectKind, String, String),
) {
    let table = &expected.name;
    for column in &expected.columns {
        let name = format!("{table}.{}", column.name);
        match actual.find_column(&column.name) {
            None => push(
                Change::Missing,
                ObjectKind::Column,
                name,
                column_sql(column),
            ),
            Some(other) if other != column => push(
                Change::Changed,
                ObjectKind::Column,
                name,
                column_changes(column, other),
            ),
            Some(_) => {}
        }
    }
    for column in &actual.columns {
        if expected.find_column(&column.name).is_none() {
            push(
                Change::Extra,
                ObjectKind::Column,
                format!("{table}.{}", column.name),
                column_sql(column),
            );
        }
    }
    // Column order only matters among the columns both have; the others are reported above.
    let common = |a: &Table, b: &Table| -> Vec<String> {
        a.columns
            .iter()
            .filter(|c| b.find_column(&c.name).is_some())
            .map(|c| c.name.clone())
            .collect()
    };
    let (order_expected, order_actual) = (common(expected, actual), common(actual, expected));
    if order_expected != order_actual {
        push(
            Change::Changed,
            ObjectKind::Table,
            table.to_string(),
            format!(
                "column order {} -> {}",
                order_expected.join(", "),
                order_actual.join(", ")
            ),
        );
    }
    let mut item = |object, name: &String, change, old: Option<String>, new: Option<String>| {
        let detail = match (old, new) {
            (Some(old), Some(new)) => format!("{old} -> {new}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => String::new(),
        };
        push(change, object, format!("{table}.{name}"), detail);
    };
    compare_maps(
        &expected.constraints,
        &actual.constraints,
        |name, change, old, new| {
            item(
                ObjectKind::Constraint,
                name,
                change,
                old.map(constraint_sql),
                new.map(constraint_sql),
            )
        },
    );
    compare_maps(
        &expected.indexes,
        &actual.indexes,
        |name, change, old, new| {
            item(
                ObjectKind::Index,
                name,
                change,
                old.map(index_sql),
                new.map(index_sql),
            )
        },
    );
    compare_maps(
        &expected.triggers,
        &actual.triggers,
        |name, change, old, new| {
            item(
                ObjectKind::Trigger,
                name,
                change,
                old.map(trigger_sql),
                new.map(trigger_sql),
            )
        },
    );
}

/// `varchar(255) not null default 'x'`.
fn column_sql(c: &Column) -> String {
    let mut s = type_sql(&c.ty);
    if !c.nullable {
        s.push_str(" not null");
    }
    if let Some(d) = &c.default {
        s.push_str(" default ");
        s.push_str(&default_sql(d));
    }
    s
}

/// `type varchar(255) -> text; nullable -> not null; default none -> now()`.
fn column_changes(old: &Column, new: &Column) -> String {
    let mut parts = Vec::new();
    if old.ty != new.ty {
        parts.push(format!(
            "type {} -> {}",
            type_sql(&old.ty),
            type_sql(&new.ty)
        ));
    }
    if old.nullable != new.nullable {
        let word = |nullable| if nullable { "nullable" } else { "not null" };
        parts.push(format!("{} -> {}", word(old.nullable), word(new.nullable)));
    }
    if old.default != new.default {
        let text = |d: &Option<DefaultExpr>| d.as_ref().map_or("none".to_owned(), default_sql);
        parts.push(format!(
            "default {} -> {}",
            text(&old.default),
            text(&new.default)
        ));
    }
    if parts.is_empty() {
        // Only reachable when the column's name differs from the one it was looked up by.
        parts.push(format!("{old:?} -> {new:?}"));
    }
    parts.join("; ")
}

fn constraint_sql(c: &Constraint) -> String {
    let list = |cols: &[String]| cols.join(", ");
    match &c.kind {
        ConstraintKind::PrimaryKey { columns } => format!("primary key ({})", list(columns)),
        ConstraintKind::Unique { columns } => format!("unique ({})", list(columns)),
        ConstraintKind::ForeignKey(fk) => {
            let mut s = format!(
                "foreign key ({}) references {} ({})",
                list(&fk.columns),
                fk.ref_table,
                list(&fk.ref_columns)
            );
            if fk.on_delete != ReferentialAction::NoAction {
                s.push_str(" on delete ");
                s.push_str(action_sql(fk.on_delete));
            }
            if fk.on_update != ReferentialAction::NoAction {
                s.push_str(" on update ");
                s.push_str(action_sql(fk.on_update));
            }
            s
        }
        ConstraintKind::Check { expr, sqlite: None } => format!("check ({expr})"),
        ConstraintKind::Check {
            expr,
            sqlite: Some(sqlite),
        } => format!("check ({expr}) / on SQLite ({sqlite})"),
    }
}

fn action_sql(a: ReferentialAction) -> &'static str {
    match a {
        ReferentialAction::NoAction => "no action",
        ReferentialAction::Restrict => "restrict",
        ReferentialAction::Cascade => "cascade",
        ReferentialAction::SetNull => "set null",
        ReferentialAction::SetDefault => "set default",
    }
}

/// `unique on (lower(email)), id where deleted_at is null`.
fn index_sql(i: &Index) -> String {
    let keys: Vec<String> = i
        .keys
        .iter()
        .map(|k| match k {
            IndexKey::Column(c) => c.clone(),
            IndexKey::Expr(e) => format!("({e})"),
        })
        .collect();
    let mut s = format!(
        "{}on {}",
        if i.unique { "unique " } else { "" },
        keys.join(", ")
    );
    if let Some(p) = &i.predicate {
        s.push_str(" where ");
        s.push_str(p);
    }
    s
}

/// `before insert or update execute touch_updated_at()`.
fn trigger_sql(t: &Trigger) -> String {
    let events: Vec<&str> = t
        .events
        .iter()
        .map(|e| match e {
            TriggerEvent::Insert => "insert",
            TriggerEvent::Update => "update",
            TriggerEvent::Delete => "delete",
        })
        .collect();
    format!(
        "{} {} execute {}()",
        match t.timing {
            TriggerTiming::Before => "before",
            TriggerTiming::After => "after",
        },
        events.join(" or "),
        t.function
    )
}
