//! The hardening series as identity-migrate 0.1.0 released it, withdrawn in 0.2.0.
//!
//! `789a88e5bf21` to `487af69e669a` followed `68d314520251` in 0.1.0. Tried with the identity
//! service's own models, the schema they built broke the service: `inet` columns refuse every
//! `VARCHAR` bind (no user could register), `timestamptz` reads back aware datetimes, `lower()`
//! indexes serve no `email = $1` lookup. 0.2.0 replaces them with new revisions under new ids
//! (README, Changelog) rather than stacking reverts on them: a database at `68d314520251` goes
//! straight to the new head, with no column converted twice.
//!
//! They stay here, unchanged, for one job: a database that applied them is recognised, told
//! what happened, and taken back to `68d314520251` by their own downgrades when the operator
//! runs `identity-migrate rollback 68d314520251` (see [`crate::withdrawal`]). Their rendered SQL
//! must not change, or such a database would see them as edited: `tests/withdrawn.rs` pins
//! their checksums to the ones 0.1.0 recorded. Nothing else may use them.

pub mod r1caa05d921dd_updated_at_trigger;
pub mod r487af69e669a_legacy_schema;
pub mod r789a88e5bf21_timestamptz_jsonb_inet;
pub mod r7a2f57a8aa25_one_unique_index_per_key;
pub mod re402adbc3a16_server_defaults;
pub mod rf64382621770_checks_and_foreign_key_indexes;

use migrate_core::Revision;

/// The withdrawn revisions, oldest first; the first follows `68d314520251`.
pub fn all() -> Vec<Revision> {
    vec![
        r789a88e5bf21_timestamptz_jsonb_inet::revision(),
        re402adbc3a16_server_defaults::revision(),
        r7a2f57a8aa25_one_unique_index_per_key::revision(),
        rf64382621770_checks_and_foreign_key_indexes::revision(),
        r1caa05d921dd_updated_at_trigger::revision(),
        r487af69e669a_legacy_schema::revision(),
    ]
}
