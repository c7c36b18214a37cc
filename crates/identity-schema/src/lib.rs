//! The identity service's schema history, as values of `migrate-core`.
//!
//! Each revision is a Rust file under [`mod@revisions`], registered in one list; [`revisions()`]
//! returns that list and [`graph()`] the validated graph built from it. The first two revisions
//! keep the ids of the original Alembic tooling (`974799e38366`, `68d314520251`), so a database it
//! managed is recognised and upgraded in place; their tables reproduce
//! `shared/spec/legacy-schema.md`, with the original's defects that lost data or broke upgrades
//! and rollbacks fixed. The series after them gives the tables the identity service's models
//! (renames, added columns, server defaults in the forms its ORM reads back) and hardens them
//! in ways the service cannot notice (CHECK constraints, unique keys, `updated_at`, the leftover
//! tables). The series that 0.1.0 released in its place is [`withdrawal()`]'s business.
//!
//! [`models()`] is the schema at head written out by hand, the source of truth the application
//! reads; a test checks that folding every revision gives exactly that.
//!
//! This crate only describes: it never renders SQL nor touches a database.

pub mod models;
pub mod revisions;

pub use models::models;

use migrate_core::{Revision, RevisionGraph, Withdrawal};
use std::sync::OnceLock;

/// Every revision of the identity schema, oldest first.
pub fn revisions() -> Vec<Revision> {
    revisions::all()
}

/// The revision graph of [`revisions()`].
///
/// # Panics
///
/// If the compiled-in list does not form a graph (a duplicate id or an unknown down revision),
/// which this crate's tests rule out.
pub fn graph() -> RevisionGraph {
    RevisionGraph::new(revisions())
        .expect("the identity revisions form a graph (checked by tests/revisions.rs)")
}

/// The service's ten tables, parents before children (the order to load, copy or lock them in).
pub const TABLES: [&str; 10] = [
    "organizations",
    "users",
    "user_profiles",
    "user_sessions",
    "mfa_methods",
    "mfa_challenges",
    "email_verifications",
    "password_resets",
    "user_activity_logs",
    "user_preferences",
];

/// The revision both chains share, where a database at a withdrawn revision goes back to.
pub const WITHDRAWN_AFTER: &str = "68d314520251";

/// The series 0.1.0 released after `68d314520251` and 0.2.0 withdrew ([`mod@revisions::withdrawn`]):
/// what the engine needs to tell a database that ran it the way forward, and to take it back.
///
/// # Panics
///
/// If the released chain does not form a graph, which this crate's tests rule out.
pub fn withdrawal() -> &'static Withdrawal {
    static WITHDRAWAL: OnceLock<Withdrawal> = OnceLock::new();
    WITHDRAWAL.get_or_init(|| Withdrawal {
        released: RevisionGraph::new(revisions::released_in_0_1())
            .expect("the chain released in 0.1.0 forms a graph (checked by tests/withdrawn.rs)"),
        back_to: WITHDRAWN_AFTER.to_owned(),
        reason: "in identity-migrate 0.2.0, which rewrote the revisions after 68d314520251 so \
                 that the identity service runs on the schema (README, Changelog)"
            .to_owned(),
    })
}
