//! The identity schema at head, written by hand, table by table: the source of truth.
//!
//! This is what the application may rely on, readable without replaying the history. It is not
//! computed from the revisions: `tests/models.rs` folds every revision and checks that the result
//! equals [`models()`], so a revision that drifts from this file (or an edit here that no
//! revision makes) fails a test instead of going unnoticed, which is how the original's models
//! file and its migrations came apart (spec defect 10).
//!
//! Conventions at head: ids default to `gen_random_uuid()`; instants are `timestamptz`, creation
//! and update times default to `now()`, and `updated_at` is kept by the `set_updated_at` trigger;
//! JSON is `jsonb` with `'{}'` or `'[]'` defaults; IP addresses are `inet`; each unique key has
//! one index; email and username are unique up to case among users not soft-deleted.

use migrate_core::ColumnType::{Boolean, Inet, Integer, Jsonb, Text, TimestampTz, Uuid};
use migrate_core::{
    Column, ColumnType, DefaultExpr, Function, Index, IndexKey, ReferentialAction, Schema, Table,
    TableName, Trigger, TriggerEvent, TriggerTiming,
};

use ReferentialAction::{Cascade, SetNull};

/// The schema at head.
pub fn models() -> Schema {
    let mut schema = Schema::new();
    schema.schemas.insert("legacy".to_owned());
    let set_updated_at = Function {
        name: TableName::new("set_updated_at"),
        body: "BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND".to_owned(),
    };
    schema
        .functions
        .insert(set_updated_at.name.clone(), set_updated_at);
    for table in [
        organizations(),
        users(),
        user_profiles(),
        user_sessions(),
        mfa_methods(),
        mfa_challenges(),
        email_verifications(),
        password_resets(),
        user_activity_logs(),
        user_preferences(),
        legacy_user_activities_simple(),
        legacy_user_sessions_simple(),
    ] {
        schema.tables.insert(table.name.clone(), table);
    }
    schema
}

// Column shorthands, so that each table below reads like its row in the spec.

fn varchar(len: u32) -> ColumnType {
    ColumnType::varchar(len)
}

/// `id uuid NOT NULL DEFAULT gen_random_uuid()`.
fn id() -> Column {
    Column::new("id", Uuid)
        .not_null()
        .default(DefaultExpr::RandomUuid)
}

/// A NOT NULL `uuid` reference.
fn reference(name: &str) -> Column {
    Column::new(name, Uuid).not_null()
}

/// A nullable `timestamptz`.
fn instant(name: &str) -> Column {
    Column::new(name, TimestampTz)
}

/// `timestamptz NOT NULL DEFAULT now()` (`created_at`, `updated_at` and the like).
fn now(name: &str) -> Column {
    Column::new(name, TimestampTz)
        .not_null()
        .default(DefaultExpr::Now)
}

/// `jsonb NOT NULL DEFAULT '{}'`.
fn object(name: &str) -> Column {
    Column::new(name, Jsonb)
        .not_null()
        .default(DefaultExpr::Json("{}".to_owned()))
}

/// `jsonb NOT NULL DEFAULT '[]'`.
fn array(name: &str) -> Column {
    Column::new(name, Jsonb)
        .not_null()
        .default(DefaultExpr::Json("[]".to_owned()))
}

/// `boolean NOT NULL DEFAULT <value>`.
fn flag(name: &str, value: bool) -> Column {
    Column::new(name, Boolean)
        .not_null()
        .default(DefaultExpr::Bool(value))
}

/// `integer NOT NULL DEFAULT 0`, never negative (a CHECK says so).
fn counter(name: &str) -> Column {
    Column::new(name, Integer)
        .not_null()
        .default(DefaultExpr::Int(0))
}

/// `varchar(len) NOT NULL DEFAULT '<value>'`.
fn setting(name: &str, len: u32, value: &str) -> Column {
    Column::new(name, varchar(len))
        .not_null()
        .default(DefaultExpr::Text(value.to_owned()))
}

/// The `BEFORE UPDATE` trigger that sets `updated_at`.
fn set_updated_at() -> Trigger {
    Trigger {
        name: "set_updated_at".to_owned(),
        timing: TriggerTiming::Before,
        events: vec![TriggerEvent::Update],
        function: TableName::new("set_updated_at"),
    }
}

/// A foreign key to `users(id)`.
fn to_users(table: Table, name: &str, column: &str, on_delete: ReferentialAction) -> Table {
    table.foreign_key(name, &[column], "users", &["id"], on_delete)
}

/// Unique up to case among users not soft-deleted.
fn unique_live_lower(name: &str, column: &str) -> Index {
    Index::on_keys(name, vec![IndexKey::Expr(format!("lower({column})"))])
        .unique()
        .filtered("deleted_at IS NULL")
}

fn organizations() -> Table {
    Table::new("organizations")
        .column(id())
        .column(Column::new("name", varchar(255)).not_null())
        .column(Column::new("slug", varchar(100)).not_null())
        .column(Column::new("display_name", varchar(255)))
        .column(Column::new("description", Text))
        .column(Column::new("website_url", varchar(500)))
        .column(Column::new("logo_url", varchar(500)))
        .column(Column::new("contact_email", varchar(255)))
        .column(Column::new("contact_phone", varchar(20)))
        .column(Column::new("address_line1", varchar(255)))
        .column(Column::new("address_line2", varchar(255)))
        .column(Column::new("city", varchar(100)))
        .column(Column::new("state_province", varchar(100)))
        .column(Column::new("postal_code", varchar(20)))
        .column(Column::new("country_code", varchar(2)))
        .column(setting("organization_type", 30, "individual"))
        .column(Column::new("industry", varchar(100)))
        .column(Column::new("employee_count_range", varchar(20)))
        .column(setting("subscription_tier", 20, "free"))
        .column(setting("subscription_status", 20, "active"))
        .column(object("settings"))
        .column(flag("is_active", true))
        .column(flag("is_verified", false))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(instant("deleted_at"))
        .primary_key("organizations_pkey", &["id"])
        .unique("organizations_slug_key", &["slug"])
        .check(
            "organizations_organization_type_check",
            "organization_type IN ('individual', 'small_business', 'enterprise', 'non_profit')",
        )
        .check_per_dialect(
            "organizations_country_code_check",
            "country_code ~ '^[A-Z]{2}$'",
            "country_code GLOB '[A-Z][A-Z]'",
        )
        .index(Index::new("ix_organizations_name", &["name"]))
        .index(Index::new("ix_organizations_type", &["organization_type"]))
        .trigger(set_updated_at())
}

fn users() -> Table {
    Table::new("users")
        .column(id())
        .column(Column::new("email", varchar(255)).not_null())
        .column(Column::new("username", varchar(150)))
        .column(Column::new("password_hash", varchar(255)).not_null())
        .column(Column::new("first_name", varchar(150)))
        .column(Column::new("last_name", varchar(150)))
        .column(Column::new("display_name", varchar(255)))
        .column(Column::new("avatar_url", varchar(500)))
        .column(Column::new("bio", Text))
        .column(Column::new("phone_number", varchar(20)))
        .column(Column::new("secondary_email", varchar(255)))
        .column(setting("language_code", 10, "en"))
        .column(setting("timezone", 50, "UTC"))
        .column(setting("theme_preference", 20, "light"))
        .column(object("notification_preferences"))
        .column(object("privacy_settings"))
        .column(setting("status", 30, "pending_verification"))
        .column(flag("is_verified", false))
        .column(flag("is_active", true))
        .column(counter("failed_login_attempts"))
        .column(instant("locked_until"))
        .column(instant("password_changed_at"))
        .column(instant("last_login_at"))
        .column(Column::new("last_login_ip", Inet))
        .column(Column::new("organization_id", Uuid))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(instant("deleted_at"))
        .primary_key("users_pkey", &["id"])
        .foreign_key(
            "users_organization_id_fkey",
            &["organization_id"],
            "organizations",
            &["id"],
            SetNull,
        )
        .check(
            "users_status_check",
            "status IN ('active', 'inactive', 'pending_verification', 'suspended', 'deleted')",
        )
        .check(
            "users_theme_preference_check",
            "theme_preference IN ('light', 'dark', 'auto')",
        )
        .check(
            "users_failed_login_attempts_check",
            "failed_login_attempts >= 0",
        )
        .index(unique_live_lower("uq_users_lower_email_live", "email"))
        .index(unique_live_lower(
            "uq_users_lower_username_live",
            "username",
        ))
        .index(Index::new("ix_users_organization_id", &["organization_id"]))
        .index(Index::new("ix_users_status", &["status"]))
        .trigger(set_updated_at())
}

fn user_profiles() -> Table {
    let table = Table::new("user_profiles")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("job_title", varchar(255)))
        .column(Column::new("department", varchar(255)))
        .column(Column::new("manager_user_id", Uuid))
        .column(object("social_links"))
        .column(Column::new("emergency_contact_name", varchar(255)))
        .column(Column::new("emergency_contact_phone", varchar(20)))
        .column(Column::new("emergency_contact_relationship", varchar(100)))
        .column(array("skills"))
        .column(array("interests"))
        .column(array("certifications"))
        .column(object("metadata"))
        .column(object("custom_fields"))
        .column(now("created_at"))
        .column(now("updated_at"))
        .primary_key("user_profiles_pkey", &["id"])
        .unique("user_profiles_user_id_key", &["user_id"]);
    let table = to_users(table, "user_profiles_user_id_fkey", "user_id", Cascade);
    to_users(
        table,
        "user_profiles_manager_user_id_fkey",
        "manager_user_id",
        SetNull,
    )
    .index(Index::new(
        "ix_user_profiles_manager_user_id",
        &["manager_user_id"],
    ))
    .trigger(set_updated_at())
}

fn user_sessions() -> Table {
    let table = Table::new("user_sessions")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("session_token_hash", varchar(255)).not_null())
        .column(Column::new("refresh_token_hash", varchar(255)))
        .column(object("device_info"))
        .column(Column::new("ip_address", Inet))
        .column(Column::new("user_agent", varchar(500)))
        .column(object("location_info"))
        .column(flag("is_active", true))
        .column(Column::new("expires_at", TimestampTz).not_null())
        .column(now("last_accessed_at"))
        .column(now("created_at"))
        .primary_key("user_sessions_pkey", &["id"])
        .unique(
            "user_sessions_session_token_hash_key",
            &["session_token_hash"],
        )
        .unique(
            "user_sessions_refresh_token_hash_key",
            &["refresh_token_hash"],
        );
    to_users(table, "user_sessions_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_sessions_expires_at", &["expires_at"]))
        .index(Index::new("ix_sessions_user_id", &["user_id"]))
}

fn mfa_methods() -> Table {
    let table = Table::new("mfa_methods")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("method_type", varchar(20)).not_null())
        .column(Column::new("identifier", varchar(255)).not_null())
        .column(Column::new("secret_encrypted", Text))
        .column(Column::new("backup_codes_encrypted", Text))
        .column(flag("is_primary", false))
        .column(flag("is_verified", false))
        .column(counter("verification_attempts"))
        .column(instant("last_used_at"))
        .column(now("created_at"))
        .column(now("updated_at"))
        .primary_key("mfa_methods_pkey", &["id"])
        .unique(
            "uq_user_mfa_method",
            &["user_id", "method_type", "identifier"],
        )
        .check(
            "mfa_methods_method_type_check",
            "method_type IN ('email', 'sms', 'totp', 'backup_codes', 'webauthn')",
        )
        .check(
            "mfa_methods_verification_attempts_check",
            "verification_attempts >= 0",
        );
    to_users(table, "mfa_methods_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_mfa_methods_type", &["method_type"]))
        .index(Index::new("ix_mfa_methods_user_id", &["user_id"]))
        .trigger(set_updated_at())
}

fn mfa_challenges() -> Table {
    let table = Table::new("mfa_challenges")
        .column(id())
        .column(reference("user_id"))
        .column(reference("mfa_method_id"))
        .column(Column::new("challenge_code_hash", varchar(255)).not_null())
        .column(Column::new("challenge_type", varchar(20)).not_null())
        .column(Column::new("expires_at", TimestampTz).not_null())
        .column(counter("attempts"))
        .column(flag("is_used", false))
        .column(Column::new("ip_address", Inet))
        .column(Column::new("user_agent", varchar(500)))
        .column(now("created_at"))
        .primary_key("mfa_challenges_pkey", &["id"])
        .foreign_key(
            "mfa_challenges_mfa_method_id_fkey",
            &["mfa_method_id"],
            "mfa_methods",
            &["id"],
            Cascade,
        )
        .check("mfa_challenges_attempts_check", "attempts >= 0");
    to_users(table, "mfa_challenges_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_mfa_challenges_expires_at", &["expires_at"]))
        .index(Index::new("ix_mfa_challenges_user_id", &["user_id"]))
        .index(Index::new(
            "ix_mfa_challenges_mfa_method_id",
            &["mfa_method_id"],
        ))
}

fn email_verifications() -> Table {
    let table = Table::new("email_verifications")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("email", varchar(255)).not_null())
        .column(Column::new("token_hash", varchar(255)).not_null())
        .column(setting("verification_type", 30, "registration"))
        .column(Column::new("expires_at", TimestampTz).not_null())
        .column(counter("attempts"))
        .column(flag("is_verified", false))
        .column(instant("verified_at"))
        .column(Column::new("ip_address", Inet))
        .column(Column::new("user_agent", varchar(500)))
        .column(now("created_at"))
        .primary_key("email_verifications_pkey", &["id"])
        .unique("email_verifications_token_hash_key", &["token_hash"])
        .check("email_verifications_attempts_check", "attempts >= 0");
    to_users(
        table,
        "email_verifications_user_id_fkey",
        "user_id",
        Cascade,
    )
    .index(Index::new(
        "ix_email_verifications_expires_at",
        &["expires_at"],
    ))
    .index(Index::new("ix_email_verifications_user_id", &["user_id"]))
}

fn password_resets() -> Table {
    let table = Table::new("password_resets")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("token_hash", varchar(255)).not_null())
        .column(Column::new("expires_at", TimestampTz).not_null())
        .column(flag("is_used", false))
        .column(instant("used_at"))
        .column(Column::new("ip_address", Inet))
        .column(Column::new("user_agent", varchar(500)))
        .column(now("created_at"))
        .primary_key("password_resets_pkey", &["id"])
        .unique("password_resets_token_hash_key", &["token_hash"]);
    to_users(table, "password_resets_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_password_resets_expires_at", &["expires_at"]))
        .index(Index::new("ix_password_resets_user_id", &["user_id"]))
}

fn user_activity_logs() -> Table {
    let table = Table::new("user_activity_logs")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("action", varchar(100)).not_null())
        .column(Column::new("resource_type", varchar(50)))
        .column(Column::new("resource_id", varchar(255)))
        .column(object("details"))
        .column(Column::new("ip_address", Inet))
        .column(Column::new("user_agent", varchar(500)))
        .column(Column::new("session_id", varchar(255)))
        .column(now("timestamp"))
        .primary_key("user_activity_logs_pkey", &["id"]);
    to_users(table, "user_activity_logs_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_activity_logs_action", &["action"]))
        .index(Index::new("ix_activity_logs_timestamp", &["timestamp"]))
        .index(Index::new("ix_activity_logs_user_id", &["user_id"]))
}

fn user_preferences() -> Table {
    let table = Table::new("user_preferences")
        .column(id())
        .column(reference("user_id"))
        .column(Column::new("preference_key", varchar(100)).not_null())
        .column(Column::new("preference_value", Jsonb).not_null())
        .column(Column::new("preference_type", varchar(50)).not_null())
        .column(flag("is_encrypted", false))
        .column(now("created_at"))
        .column(now("updated_at"))
        .primary_key("user_preferences_pkey", &["id"])
        .unique("uq_user_preference_key", &["user_id", "preference_key"]);
    to_users(table, "user_preferences_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_preferences_key", &["preference_key"]))
        .index(Index::new("ix_preferences_user_id", &["user_id"]))
        .trigger(set_updated_at())
}

// The two tables the original left behind, kept as they were (types included) in `legacy`.
// Their foreign keys to `users_simple` went with that table; they have no defaults.

fn legacy_user_activities_simple() -> Table {
    use migrate_core::ColumnType::Timestamp;
    Table::new("legacy.user_activities_simple")
        .column(Column::new("id", Uuid).not_null())
        .column(Column::new("user_id", Uuid).not_null())
        .column(Column::new("activity_type", varchar(50)).not_null())
        .column(Column::new("description", Text))
        .column(Column::new("ip_address", varchar(45)))
        .column(Column::new("user_agent", Text))
        .column(Column::new("activity_metadata", Text))
        .column(Column::new("created_at", Timestamp))
        .primary_key("user_activities_simple_pkey", &["id"])
}

fn legacy_user_sessions_simple() -> Table {
    use migrate_core::ColumnType::Timestamp;
    Table::new("legacy.user_sessions_simple")
        .column(Column::new("id", Uuid).not_null())
        .column(Column::new("user_id", Uuid).not_null())
        .column(Column::new("session_token", varchar(255)).not_null())
        .column(Column::new("refresh_token", varchar(255)).not_null())
        .column(Column::new("device_name", varchar(255)))
        .column(Column::new("device_type", varchar(50)))
        .column(Column::new("user_agent", Text))
        .column(Column::new("ip_address", varchar(45)))
        .column(Column::new("country", varchar(100)))
        .column(Column::new("region", varchar(100)))
        .column(Column::new("city", varchar(100)))
        .column(Column::new("is_active", Boolean))
        .column(Column::new("last_activity", Timestamp))
        .column(Column::new("created_at", Timestamp))
        .column(Column::new("expires_at", Timestamp).not_null())
        .primary_key("user_sessions_simple_pkey", &["id"])
        .index(Index::new("ix_user_sessions_simple_refresh_token", &["refresh_token"]).unique())
        .index(Index::new("ix_user_sessions_simple_session_token", &["session_token"]).unique())
}
