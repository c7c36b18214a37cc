//! `f64382621770`: CHECK constraints for the values the application assumes, and an index under
//! every foreign key (spec defects 8 and 9).
//!
//! - The enum-like columns accept the application's own values only (the spec, defect 9), and
//!   may still be changed by a later revision. A CHECK over `text` rather than a native enum: a
//!   value set that changes is then one transactional `DROP`/`ADD CONSTRAINT`, where `ALTER TYPE
//!   ... ADD VALUE` cannot run in the same transaction as a statement that uses the new value.
//!   Columns whose value set the spec does not give (`subscription_tier`, `verification_type`,
//!   `challenge_type`...) are left open: guessing would refuse real rows.
//! - Counters cannot go below zero, and a country code is two capital letters (ISO 3166-1
//!   alpha-2 form; NULL still means unknown). SQLite has no regular expressions: there the
//!   same rule is `GLOB '[A-Z][A-Z]'` (GLOB is case-sensitive and matches the whole value).
//! - `mfa_challenges.mfa_method_id` and `user_profiles.manager_user_id` get an index: without
//!   one, deleting an MFA method or a user scans the referring table (the cascade and the `SET
//!   NULL` look for referring rows). Every other foreign key already leads an index.
//!
//! Rows that would break a constraint are listed, and the revision refused, before anything
//! changes. The downgrade only drops what was added, so it cannot fail on data.

use crate::revisions::checks::{self, Check};
use crate::revisions::{add_constraint, drop_constraint};
use migrate_core::{ConstraintKind, Index, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "f64382621770",
        &["7a2f57a8aa25"],
        "CHECK constraints for enum-like columns, counters and country codes; foreign key indexes",
    )
    .created("2026-11-24")
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The constraints, named as PostgreSQL names a column's CHECK (`<table>_<column>_check`).
///
/// Also read by `789a88e5bf21`, which runs the same check first in the series.
pub(super) const CHECKS: [Check; 9] = [
    Check {
        table: "organizations",
        name: "organizations_organization_type_check",
        column: "organization_type",
        expr: "organization_type IN ('individual', 'small_business', 'enterprise', 'non_profit')",
        sqlite: None,
    },
    Check {
        table: "organizations",
        name: "organizations_country_code_check",
        column: "country_code",
        expr: "country_code ~ '^[A-Z]{2}$'",
        sqlite: Some("country_code GLOB '[A-Z][A-Z]'"),
    },
    Check {
        table: "users",
        name: "users_status_check",
        column: "status",
        expr: "status IN ('active', 'inactive', 'pending_verification', 'suspended', 'deleted')",
        sqlite: None,
    },
    Check {
        table: "users",
        name: "users_theme_preference_check",
        column: "theme_preference",
        expr: "theme_preference IN ('light', 'dark', 'auto')",
        sqlite: None,
    },
    Check {
        table: "users",
        name: "users_failed_login_attempts_check",
        column: "failed_login_attempts",
        expr: "failed_login_attempts >= 0",
        sqlite: None,
    },
    Check {
        table: "mfa_methods",
        name: "mfa_methods_method_type_check",
        column: "method_type",
        expr: "method_type IN ('email', 'sms', 'totp', 'backup_codes', 'webauthn')",
        sqlite: None,
    },
    Check {
        table: "mfa_methods",
        name: "mfa_methods_verification_attempts_check",
        column: "verification_attempts",
        expr: "verification_attempts >= 0",
        sqlite: None,
    },
    Check {
        table: "mfa_challenges",
        name: "mfa_challenges_attempts_check",
        column: "attempts",
        expr: "attempts >= 0",
        sqlite: None,
    },
    Check {
        table: "email_verifications",
        name: "email_verifications_attempts_check",
        column: "attempts",
        expr: "attempts >= 0",
        sqlite: None,
    },
];

/// The foreign keys that lead no index: (table, new index, column).
const FOREIGN_KEY_INDEXES: [(&str, &str, &str); 2] = [
    (
        "user_profiles",
        "ix_user_profiles_manager_user_id",
        "manager_user_id",
    ),
    (
        "mfa_challenges",
        "ix_mfa_challenges_mfa_method_id",
        "mfa_method_id",
    ),
];

fn upgrade() -> Vec<Op> {
    let mut ops = vec![checks::rows_pass(&CHECKS)];
    ops.extend(CHECKS.iter().map(|check| {
        add_constraint(
            check.table,
            check.name,
            ConstraintKind::Check {
                expr: check.expr.to_owned(),
                sqlite: check.sqlite.map(str::to_owned),
            },
        )
    }));
    ops.extend(
        FOREIGN_KEY_INDEXES
            .iter()
            .map(|(table, index, column)| Op::CreateIndex {
                table: (*table).into(),
                index: Index::new(*index, &[column]),
                concurrently: false,
            }),
    );
    ops
}

fn downgrade() -> Vec<Op> {
    let mut ops: Vec<Op> = FOREIGN_KEY_INDEXES
        .iter()
        .rev()
        .map(|(table, index, _)| Op::DropIndex {
            table: (*table).into(),
            name: (*index).to_owned(),
            concurrently: false,
        })
        .collect();
    ops.extend(
        CHECKS
            .iter()
            .rev()
            .map(|check| drop_constraint(check.table, check.name)),
    );
    ops
}
