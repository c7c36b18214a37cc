//! The identity service's schema history, as values of `migrate-core`.
//!
//! Each revision is a Rust file under [`mod@revisions`], registered in one list; [`revisions()`]
//! returns that list and [`graph()`] the validated graph built from it. The first two revisions
//! keep the ids of the original Alembic tooling (`974799e38366`, `68d314520251`), so a database it
//! managed is recognised and upgraded in place; their tables reproduce
//! `shared/spec/legacy-schema.md`, with the original's defects that lost data or broke upgrades
//! and rollbacks fixed. The hardening series after them fixes the rest (types, server defaults,
//! unique keys, CHECK constraints, `updated_at`, the leftover tables).
//!
//! [`models()`] is the schema at head written out by hand, the source of truth the application
//! reads; a test checks that folding every revision gives exactly that.
//!
//! This crate only describes: it never renders SQL nor touches a database.

pub mod models;
pub mod revisions;

pub use models::models;

use migrate_core::{Revision, RevisionGraph};

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
