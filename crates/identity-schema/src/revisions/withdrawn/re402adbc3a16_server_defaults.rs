//! `e402adbc3a16`: the defaults the original kept in Python move into the database (spec defect 4).
//!
//! Any writer (a second service, a script, a backfill, `psql`) can now insert a row by giving
//! only what is specific to it: ids come from `gen_random_uuid()` (built in from PostgreSQL 13),
//! creation and update times from `now()`, flags, counters, text settings and JSON documents from
//! the literals the spec lists in its column "default in the original". Nothing else changes:
//! columns without a default in the original get none here either.
//!
//! Setting or dropping a default touches only the catalog (no row is read or rewritten), so both
//! directions are quick; the downgrade drops exactly the defaults set here.

use migrate_core::{ColumnChange, DefaultExpr, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "e402adbc3a16",
        &["789a88e5bf21"],
        "Server defaults for what the original defaulted in Python",
    )
    .created("2026-11-24")
    .upgrade(
        defaults()
            .into_iter()
            .map(|(table, column, default)| set_default(table, column, Some(default)))
            .collect(),
    )
    .downgrade(
        defaults()
            .into_iter()
            .rev()
            .map(|(table, column, _)| set_default(table, column, None))
            .collect(),
    )
}

/// Every default, table by table in the spec's order (ids first).
fn defaults() -> Vec<(&'static str, &'static str, DefaultExpr)> {
    use DefaultExpr::{Bool, Int, Json, Now, RandomUuid};
    let text = |s: &str| DefaultExpr::Text(s.to_owned());
    let object = || Json("{}".to_owned());
    let array = || Json("[]".to_owned());
    vec![
        ("organizations", "id", RandomUuid),
        ("organizations", "organization_type", text("individual")),
        ("organizations", "subscription_tier", text("free")),
        ("organizations", "subscription_status", text("active")),
        ("organizations", "settings", object()),
        ("organizations", "is_active", Bool(true)),
        ("organizations", "is_verified", Bool(false)),
        ("organizations", "created_at", Now),
        ("organizations", "updated_at", Now),
        ("users", "id", RandomUuid),
        ("users", "language_code", text("en")),
        ("users", "timezone", text("UTC")),
        ("users", "theme_preference", text("light")),
        ("users", "notification_preferences", object()),
        ("users", "privacy_settings", object()),
        ("users", "status", text("pending_verification")),
        ("users", "is_verified", Bool(false)),
        ("users", "is_active", Bool(true)),
        ("users", "failed_login_attempts", Int(0)),
        ("users", "created_at", Now),
        ("users", "updated_at", Now),
        ("user_profiles", "id", RandomUuid),
        ("user_profiles", "social_links", object()),
        ("user_profiles", "skills", array()),
        ("user_profiles", "interests", array()),
        ("user_profiles", "certifications", array()),
        ("user_profiles", "metadata", object()),
        ("user_profiles", "custom_fields", object()),
        ("user_profiles", "created_at", Now),
        ("user_profiles", "updated_at", Now),
        ("user_sessions", "id", RandomUuid),
        ("user_sessions", "device_info", object()),
        ("user_sessions", "location_info", object()),
        ("user_sessions", "is_active", Bool(true)),
        ("user_sessions", "last_accessed_at", Now),
        ("user_sessions", "created_at", Now),
        ("mfa_methods", "id", RandomUuid),
        ("mfa_methods", "is_primary", Bool(false)),
        ("mfa_methods", "is_verified", Bool(false)),
        ("mfa_methods", "verification_attempts", Int(0)),
        ("mfa_methods", "created_at", Now),
        ("mfa_methods", "updated_at", Now),
        ("mfa_challenges", "id", RandomUuid),
        ("mfa_challenges", "attempts", Int(0)),
        ("mfa_challenges", "is_used", Bool(false)),
        ("mfa_challenges", "created_at", Now),
        ("email_verifications", "id", RandomUuid),
        (
            "email_verifications",
            "verification_type",
            text("registration"),
        ),
        ("email_verifications", "attempts", Int(0)),
        ("email_verifications", "is_verified", Bool(false)),
        ("email_verifications", "created_at", Now),
        ("password_resets", "id", RandomUuid),
        ("password_resets", "is_used", Bool(false)),
        ("password_resets", "created_at", Now),
        ("user_activity_logs", "id", RandomUuid),
        ("user_activity_logs", "details", object()),
        ("user_activity_logs", "timestamp", Now),
        ("user_preferences", "id", RandomUuid),
        ("user_preferences", "is_encrypted", Bool(false)),
        ("user_preferences", "created_at", Now),
        ("user_preferences", "updated_at", Now),
    ]
}

/// Sets (`Some`) or drops (`None`) one column's default.
fn set_default(table: &str, column: &str, default: Option<DefaultExpr>) -> Op {
    Op::AlterColumn {
        table: table.into(),
        column: column.to_owned(),
        change: ColumnChange {
            default: Some(default),
            ..ColumnChange::default()
        },
    }
}
