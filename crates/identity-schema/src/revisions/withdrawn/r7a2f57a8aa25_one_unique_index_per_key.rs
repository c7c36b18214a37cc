//! `7a2f57a8aa25`: one unique index per unique key, and email and username unique up to case
//! among live users (spec defects 6 and 7).
//!
//! - The `ix_...` unique indexes that repeat a UNIQUE constraint on the same column go; the
//!   constraint stays (it is what a foreign key or `ON CONFLICT ON CONSTRAINT` can name). Every
//!   write maintained both.
//! - `users_email_key` and `users_username_key` (with their duplicates `ix_users_email` and
//!   `ix_users_username`) become unique indexes on `lower(email)` and `lower(username)` for rows
//!   where `deleted_at IS NULL`: `A@x.io` and `a@x.io` can no longer be two live accounts, and a
//!   soft-deleted user no longer holds their address or name. Live users that already collide up
//!   to case are listed with their ids, and the revision refused, before anything changes.
//!
//! A lookup must use the index's expression and predicate (`lower(email) = lower($1) AND
//! deleted_at IS NULL`) to be served by it: there is no index on the bare column any more.
//!
//! The downgrade restores the case-sensitive constraints over all users and the duplicate
//! indexes. It is refused, with the users listed, when rows written since the upgrade break
//! them (a new user reusing the address of a soft-deleted one): the old schema has no room for
//! both, and choosing which row to drop is not a migration's call.

use crate::revisions::checks;
use crate::revisions::{add_constraint, drop_constraint};
use migrate_core::{ConstraintKind, Index, IndexKey, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "7a2f57a8aa25",
        &["e402adbc3a16"],
        "One unique index per unique key; email and username unique up to case among live users",
    )
    .created("2026-11-24")
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The unique `ix_...` indexes that repeat a UNIQUE constraint: (table, index, column).
const DUPLICATES: [(&str, &str, &str); 7] = [
    ("organizations", "ix_organizations_slug", "slug"),
    ("users", "ix_users_email", "email"),
    ("users", "ix_users_username", "username"),
    ("user_profiles", "ix_user_profiles_user_id", "user_id"),
    (
        "user_sessions",
        "ix_sessions_token_hash",
        "session_token_hash",
    ),
    (
        "email_verifications",
        "ix_email_verifications_token",
        "token_hash",
    ),
    ("password_resets", "ix_password_resets_token", "token_hash"),
];

/// The case-insensitive keys of live users: (column, new index, old constraint).
const LIVE_KEYS: [(&str, &str, &str); 2] = [
    ("email", "uq_users_lower_email_live", "users_email_key"),
    (
        "username",
        "uq_users_lower_username_live",
        "users_username_key",
    ),
];

/// `CREATE UNIQUE INDEX <name> ON users (lower(<column>)) WHERE deleted_at IS NULL`.
fn live_unique_index(name: &str, column: &str) -> Index {
    Index::on_keys(name, vec![IndexKey::Expr(format!("lower({column})"))])
        .unique()
        .filtered("deleted_at IS NULL")
}

fn upgrade() -> Vec<Op> {
    let mut ops: Vec<Op> = LIVE_KEYS
        .iter()
        .map(|(column, _, _)| checks::live_users_unique_ignoring_case(column))
        .collect();
    ops.extend(DUPLICATES.iter().map(|(table, index, _)| Op::DropIndex {
        table: (*table).into(),
        name: (*index).to_owned(),
        concurrently: false,
    }));
    for (column, index, constraint) in LIVE_KEYS {
        ops.push(drop_constraint("users", constraint));
        ops.push(Op::CreateIndex {
            table: "users".into(),
            index: live_unique_index(index, column),
            concurrently: false,
        });
    }
    ops
}

fn downgrade() -> Vec<Op> {
    // Checked first, so that a refusal names every offending user rather than PostgreSQL's
    // first duplicate key, and before anything is undone.
    let mut ops: Vec<Op> = LIVE_KEYS
        .iter()
        .map(|(column, _, _)| checks::all_users_unique(column))
        .collect();
    for (column, index, constraint) in LIVE_KEYS.iter().rev() {
        ops.push(Op::DropIndex {
            table: "users".into(),
            name: (*index).to_owned(),
            concurrently: false,
        });
        ops.push(add_constraint(
            "users",
            constraint,
            ConstraintKind::Unique {
                columns: vec![(*column).to_owned()],
            },
        ));
    }
    ops.extend(
        DUPLICATES
            .iter()
            .rev()
            .map(|(table, index, column)| Op::CreateIndex {
                table: (*table).into(),
                index: Index::new(*index, &[column]).unique(),
                concurrently: false,
            }),
    );
    ops
}
