//! `094916cde150`: CHECK constraints for the values the service assumes, added `NOT VALID`
//! (spec `legacy-schema.md`, defect 9).
//!
//! - The enum-like columns accept the service's own values only (defect 9 lists them), as a
//!   CHECK over text rather than a native enum: a value set that changes is then one
//!   transactional `DROP`/`ADD CONSTRAINT`, and the ORM binds and reads plain `VARCHAR` either
//!   way. Columns whose value set the spec does not give (`subscription_tier`,
//!   `verification_type`, `challenge_type`...) stay open: guessing would refuse real rows.
//! - Counters cannot go below zero, and a country code is two capital letters (NULL still means
//!   unknown). SQLite has no regular expressions: there the same rule is `GLOB '[A-Z][A-Z]'`.
//! - IP address columns hold IP addresses. They stay text, which is what the ORM binds (an
//!   `inet` column refuses every `VARCHAR` bind, even NULL); the CHECK is PostgreSQL's own
//!   parser, `family(col::inet) IN (4, 6)`, so it accepts exactly what `inet` accepts (IPv4,
//!   IPv6, with or without a prefix length). A value it cannot parse is refused with `invalid
//!   input syntax for type inet`. On SQLite, which has no address type, the rule is the
//!   characters an address is made of, with a `.` or a `:`.
//!
//! `NOT VALID` makes each ADD a catalog change: new and updated rows are checked from now on,
//! existing rows are not read under the table's exclusive lock. `ea2415e1242d` validates them
//! with a lock that lets reads and writes go on. SQLite has no `NOT VALID`: its table rebuild
//! checks every row at once, in this revision's transaction.

use super::checks::Check;
use super::drop_constraint;
use migrate_core::{Constraint, ConstraintKind, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "094916cde150",
        &["fbcbc6afff27"],
        "CHECK constraints for enum-like columns, counters, country codes and IP addresses (NOT VALID)",
    )
    .created("2026-12-03")
    // Each table in a transaction of its own under the online engine: no login waits
    // behind a transaction that holds the locks of several tables.
    .table_by_table()
    .upgrade(
        constraints()
            .into_iter()
            .map(|(table, constraint)| Op::AddConstraint {
                table: table.into(),
                constraint,
                not_valid: true,
            })
            .collect(),
    )
    .downgrade(
        constraints()
            .into_iter()
            .rev()
            .map(|(table, constraint)| drop_constraint(table, &constraint.name))
            .collect(),
    )
}

/// The value constraints, named as PostgreSQL names a column's CHECK (`<table>_<column>_check`),
/// on the names the columns have at head. Also read by `3ffba08b0d3f` and `ea2415e1242d`, which
/// list the rows these would refuse.
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
        name: "mfa_methods_failure_count_check",
        column: "failure_count",
        expr: "failure_count >= 0",
        sqlite: None,
    },
    Check {
        table: "mfa_challenges",
        name: "mfa_challenges_attempts_used_check",
        column: "attempts_used",
        expr: "attempts_used >= 0",
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

/// The `varchar(45)` columns that hold IP addresses: (table, column).
pub(super) const IP_ADDRESSES: [(&str, &str); 6] = [
    ("users", "last_login_ip"),
    ("user_sessions", "ip_address"),
    ("mfa_challenges", "ip_address"),
    ("email_verifications", "ip_address"),
    ("password_resets", "ip_address"),
    ("user_activity_logs", "ip_address"),
];

/// The CHECK that a column holds an IP address, named `<table>_<column>_check`.
pub(super) fn ip_address_check(table: &str, column: &str) -> Constraint {
    Constraint {
        name: format!("{table}_{column}_check"),
        kind: ConstraintKind::Check {
            expr: format!("family({column}::inet) IN (4, 6)"),
            sqlite: Some(format!(
                "{column} NOT GLOB '*[^0-9A-Fa-f:./]*' AND {column} GLOB '*[.:]*'"
            )),
        },
    }
}

/// Every constraint this revision adds, in order: values, then addresses.
pub(super) fn constraints() -> Vec<(&'static str, Constraint)> {
    let values = CHECKS.iter().map(|c| {
        (
            c.table,
            Constraint {
                name: c.name.to_owned(),
                kind: ConstraintKind::Check {
                    expr: c.expr.to_owned(),
                    sqlite: c.sqlite.map(str::to_owned),
                },
            },
        )
    });
    let addresses = IP_ADDRESSES
        .iter()
        .map(|&(table, column)| (table, ip_address_check(table, column)));
    values.chain(addresses).collect()
}
