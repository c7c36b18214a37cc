//! `487af69e669a`: the two tables the original left behind move to a `legacy` schema (spec
//! defect 2).
//!
//! `68d314520251` in the original dropped `users_simple` but kept `user_activities_simple` and
//! `user_sessions_simple`, which nothing reads any more. Dropping them would lose whatever they
//! hold; leaving them in `public` keeps them next to the live `user_sessions` and
//! `user_activity_logs`, one typo apart. `ALTER TABLE ... SET SCHEMA` moves each table with its
//! rows, indexes and constraints without copying anything, so this revision is quick both ways.
//! The downgrade moves them back and drops the then empty schema.
//!
//! Their columns keep the original types: they are history, not data this service writes.
//!
//! As the last revision of the hardening series, its downgrade is the first to run on the way
//! back, so it also checks what `7a2f57a8aa25`'s downgrade will need (no two users sharing an
//! email or a username exactly, which head allows once one of them is soft-deleted): a
//! downgrade to `68d314520251` is then refused before any revision is undone, rather than
//! halfway down. `7a2f57a8aa25` checks again for itself.

use crate::revisions::checks;
use migrate_core::{Op, Revision, TableName};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "487af69e669a",
        &["1caa05d921dd"],
        "Move the leftover simplified tables to the legacy schema",
    )
    .created("2026-11-24")
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The schema that keeps them.
const LEGACY: &str = "legacy";

/// The leftover tables.
const TABLES: [&str; 2] = ["user_activities_simple", "user_sessions_simple"];

fn upgrade() -> Vec<Op> {
    let mut ops = vec![Op::CreateSchema {
        name: LEGACY.to_owned(),
    }];
    ops.extend(TABLES.iter().map(|table| Op::SetTableSchema {
        table: TableName::new(*table),
        schema: Some(LEGACY.to_owned()),
    }));
    ops
}

fn downgrade() -> Vec<Op> {
    // For the rest of the series (see the module's documentation).
    let mut ops = vec![
        checks::all_users_unique("email"),
        checks::all_users_unique("username"),
    ];
    ops.extend(TABLES.iter().rev().map(|table| Op::SetTableSchema {
        table: TableName::qualified(LEGACY, *table),
        schema: None,
    }));
    ops.push(Op::DropSchema {
        name: LEGACY.to_owned(),
    });
    ops
}
