//! `f0c623fbdcf5`: `updated_at` is kept by the database, in naive UTC, not by each writer.
//!
//! The service sets `updated_at` to `datetime.utcnow()` on every ORM update; any other writer (a
//! script, a second service, a manual fix) leaves it stale. A `BEFORE UPDATE` trigger on every
//! table with an `updated_at` sets it to `now() AT TIME ZONE 'utc'`: the start of the writing
//! transaction as a naive UTC time, the column's type and the service's convention, and the
//! same clock as the column's server default. (A plain `now()` assigned to a `timestamp` column
//! is the session's local time.)
//!
//! The trigger overwrites the value the writer gives, so that one clock stamps every update.
//! The ORM does not read the value back after an UPDATE: its in-memory `updated_at` is its own
//! `utcnow()`, which the stored one follows within the transaction's duration.
//!
//! On SQLite the trigger is an `AFTER UPDATE` stamp with `CURRENT_TIMESTAMP`, which is UTC.

use migrate_core::{Function, Op, Revision, TableName, Trigger, TriggerEvent, TriggerTiming};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "f0c623fbdcf5",
        &["ea2415e1242d"],
        "Maintain updated_at with a trigger, in naive UTC",
    )
    .created("2026-12-03")
    // Each table in a transaction of its own under the online engine: no login waits
    // behind a transaction that holds the locks of several tables.
    .table_by_table()
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The tables that have an `updated_at` column.
pub(crate) const TABLES: [&str; 5] = [
    "organizations",
    "users",
    "user_profiles",
    "mfa_methods",
    "user_preferences",
];

/// The trigger function, which `models()` holds as well.
pub(crate) fn function() -> Function {
    Function {
        name: TableName::new(FUNCTION),
        body: "BEGIN\n    NEW.updated_at := now() AT TIME ZONE 'utc';\n    RETURN NEW;\nEND"
            .to_owned(),
    }
}

/// The trigger on each table (trigger names are per table).
pub(crate) fn trigger() -> Trigger {
    Trigger {
        name: FUNCTION.to_owned(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: TableName::new(FUNCTION),
    }
}

/// The trigger function's name (in the default schema), also the trigger's.
const FUNCTION: &str = "set_updated_at";

fn upgrade() -> Vec<Op> {
    let mut ops = vec![Op::CreateFunction(function())];
    ops.extend(TABLES.iter().map(|table| Op::CreateTrigger {
        table: (*table).into(),
        trigger: trigger(),
    }));
    ops
}

fn downgrade() -> Vec<Op> {
    let mut ops: Vec<Op> = TABLES
        .iter()
        .rev()
        .map(|table| Op::DropTrigger {
            table: (*table).into(),
            name: FUNCTION.to_owned(),
        })
        .collect();
    ops.push(Op::DropFunction {
        name: TableName::new(FUNCTION),
    });
    ops
}
