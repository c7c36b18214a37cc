//! `1caa05d921dd`: `updated_at` is kept by the database, not by each writer.
//!
//! The original set `updated_at` in Python on every ORM update; any other writer (a script, a
//! second service, a manual fix) left it stale. A `BEFORE UPDATE` trigger on every table with an
//! `updated_at` now sets it to `now()`, the start of the writing transaction, which is also the
//! column's server default: insert and update times come from one clock.
//!
//! The trigger overwrites a value the writer gives. Letting an explicit value win (a `WHEN (OLD.
//! updated_at IS NOT DISTINCT FROM NEW.updated_at)` condition) would let the application's
//! client-side naive timestamps through, which a `timestamptz` column reads in the session's time
//! zone, so one clock is the safer rule while writers catch up.

use migrate_core::{Function, Op, Revision, TableName, Trigger, TriggerEvent, TriggerTiming};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "1caa05d921dd",
        &["f64382621770"],
        "Maintain updated_at with a trigger",
    )
    .created("2026-11-24")
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The tables that have an `updated_at` column.
const TABLES: [&str; 5] = [
    "organizations",
    "users",
    "user_profiles",
    "mfa_methods",
    "user_preferences",
];

/// The trigger function's name (in the default schema).
const FUNCTION: &str = "set_updated_at";

/// The trigger's name on each table (trigger names are per table).
const TRIGGER: &str = "set_updated_at";

fn upgrade() -> Vec<Op> {
    let mut ops = vec![Op::CreateFunction(Function {
        name: TableName::new(FUNCTION),
        body: "BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND".to_owned(),
    })];
    ops.extend(TABLES.iter().map(|table| Op::CreateTrigger {
        table: (*table).into(),
        trigger: Trigger {
            name: TRIGGER.to_owned(),
            timing: TriggerTiming::Before,
            events: vec![TriggerEvent::Update],
            function: TableName::new(FUNCTION),
        },
    }));
    ops
}

fn downgrade() -> Vec<Op> {
    let mut ops: Vec<Op> = TABLES
        .iter()
        .rev()
        .map(|table| Op::DropTrigger {
            table: (*table).into(),
            name: TRIGGER.to_owned(),
        })
        .collect();
    ops.push(Op::DropFunction {
        name: TableName::new(FUNCTION),
    });
    ops
}
