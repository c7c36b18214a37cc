//! `411d3d954d7f`: the two tables the original left behind are renamed `legacy_*` (spec
//! `legacy-schema.md`, defect 2).
//!
//! `68d314520251` in the original dropped `users_simple` but kept `user_activities_simple` and
//! `user_sessions_simple`, which nothing reads any more. Dropping them would lose whatever they
//! hold; left as they are, they sit next to the live `user_sessions` and `user_activity_logs`,
//! one typo apart. Renamed `legacy_user_activities_simple` and `legacy_user_sessions_simple`,
//! with their rows, indexes and constraints (a catalog change, quick both ways).
//!
//! The same names on both databases. A PostgreSQL schema `legacy` would need a name of another
//! shape on SQLite, which has no schemas: `"legacy.user_sessions_simple"`, one identifier
//! holding a dot, reads as a schema-qualified name that SQLite would resolve elsewhere. A
//! prefix reads as what it is everywhere.
//!
//! Their columns keep the original types: they are history, not data the service writes.

use migrate_core::{Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "411d3d954d7f",
        &["f0c623fbdcf5"],
        "Rename the leftover simplified tables legacy_*",
    )
    .created("2026-12-03")
    .allow(
        "rename-breaks-release",
        "no release of the service maps user_sessions_simple or user_activities_simple (spec service-models.md section 2): nothing reads them by their old names",
    )
    .upgrade(TABLES.iter().map(|t| rename(t, &legacy(t))).collect())
    .downgrade(TABLES.iter().rev().map(|t| rename(&legacy(t), t)).collect())
}

/// The leftover tables, as `68d314520251` names them.
pub(crate) const TABLES: [&str; 2] = ["user_activities_simple", "user_sessions_simple"];

/// The name a leftover table has at head.
pub(crate) fn legacy(table: &str) -> String {
    format!("legacy_{table}")
}

fn rename(from: &str, to: &str) -> Op {
    Op::RenameTable {
        table: from.into(),
        to: to.to_owned(),
    }
}
