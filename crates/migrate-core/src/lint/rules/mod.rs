//! The rules, one a file, each named after its id (`type-change-rewrite` is
//! `type_change_rewrite.rs`), each with its tests: one that fires it, one that shows its safe
//! form passing.

use super::{Found, Rule};

mod concurrently_in_transaction;
mod constraint_without_not_valid;
mod drop_breaks_release;
mod drop_index_without_concurrently;
mod drop_loses_data;
mod index_without_concurrently;
mod key_without_using_index;
mod rename_breaks_release;
mod required_column_without_default;
mod set_not_null_scan;
mod type_change_rewrite;
pub(super) mod unbatched_update;
pub(super) mod unknown_sql;
mod volatile_default_rewrite;

#[cfg(test)]
pub(super) mod test_support;

/// Every rule, in report order: what blocks the service first, then what breaks it, then the
/// rest.
pub(super) const ALL: &[Rule] = &[
    type_change_rewrite::RULE,
    volatile_default_rewrite::RULE,
    set_not_null_scan::RULE,
    constraint_without_not_valid::RULE,
    key_without_using_index::RULE,
    index_without_concurrently::RULE,
    drop_index_without_concurrently::RULE,
    concurrently_in_transaction::RULE,
    unbatched_update::RULE,
    required_column_without_default::RULE,
    rename_breaks_release::RULE,
    drop_breaks_release::RULE,
    drop_loses_data::RULE,
    unknown_sql::RULE,
];

/// A finding about `object`.
pub(super) fn found(object: impl Into<String>, message: String, help: &str) -> Found {
    Found {
        object: object.into(),
        message,
        help: help.to_owned(),
    }
}
