//! The identity schema at head, written by hand, table by table: the source of truth.
//!
//! This is what the application may rely on, readable without replaying the history. It is not
//! computed from the revisions: `tests/models.rs` folds every revision and checks that the result
//! equals [`models()`], so a revision that drifts from this file (or an edit here that no
//! revision makes) fails a test instead of going unnoticed, which is how the original's models
//! file and its migrations came apart (spec defect 10).
//!
//! Each of the ten tables has every column of the identity service's model of it
//! (`shared/spec/service-models.md` §1), under the model's name and with a type that takes the
//! ORM's binds and reads back what it wrote (§4, §5); a comment says where a column was renamed
//! from, and which columns only the database has. The README's "Schema" section maps the two.
//!
//! Conventions at head: ids default to `gen_random_uuid()` (32 hex digits on SQLite, the form
//! SQLAlchemy stores there); instants are `timestamp without time zone` holding UTC, the
//! service's convention, and creation and update times default to `now() AT TIME ZONE 'utc'`;
//! `updated_at` is kept by the `set_updated_at` trigger; JSON is `json` with `'{}'` or `'[]'`
//! defaults; IP addresses are text that a CHECK reads as an address; each unique key has one
//! index; email and username are also unique up to case among users not soft-deleted.

use migrate_core::ColumnType::{Boolean, Integer, Json, Text, Timestamp, Uuid};
use migrate_core::{
    Column, ColumnType, ConstraintKind, DefaultExpr, Function, Index, IndexKey, ReferentialAction,
    Schema, Table, TableName, Trigger, TriggerEvent, TriggerTiming,
};

use ReferentialAction::{Cascade, SetNull};

/// The schema at head.
pub fn models() -> Schema {
    let mut schema = Schema::new();
    let set_updated_at = Function {
        name: TableName::new("set_updated_at"),
        body: "BEGIN\n    NEW.updated_at := now() AT TIME ZONE 'utc';\n    RETURN NEW;\nEND"
            .to_owned(),
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

/// A nullable column without a default.
fn optional(name: &str, ty: ColumnType) -> Column {
    Column::new(name, ty)
}

/// A NOT NULL column without a default: what a writer must give.
fn required(name: &str, ty: ColumnType) -> Column {
    Column::new(name, ty).not_null()
}

/// `id uuid NOT NULL DEFAULT gen_random_uuid()`.
fn id() -> Column {
    Column::new("id", Uuid)
        .not_null()
        .default(DefaultExpr::RandomUuidHex)
}

/// A NOT NULL `uuid` reference.
fn reference(name: &str) -> Column {
    required(name, Uuid)
}

/// A nullable naive UTC `timestamp`.
fn instant(name: &str) -> Column {
    optional(name, Timestamp)
}

/// `timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')` (`created_at`, `updated_at` and the
/// like).
fn now(name: &str) -> Column {
    required(name, Timestamp).default(DefaultExpr::UtcNow)
}

/// `json NOT NULL DEFAULT '{}'`.
fn object(name: &str) -> Column {
    required(name, Json).default(DefaultExpr::Json("{}".to_owned()))
}

/// `json NOT NULL DEFAULT '[]'`.
fn array(name: &str) -> Column {
    required(name, Json).default(DefaultExpr::Json("[]".to_owned()))
}

/// A database-only `json` column, nullable, `DEFAULT '{}'`.
fn optional_object(name: &str) -> Column {
    optional(name, Json).default(DefaultExpr::Json("{}".to_owned()))
}

/// `boolean NOT NULL DEFAULT <value>`.
fn flag(name: &str, value: bool) -> Column {
    required(name, Boolean).default(DefaultExpr::Bool(value))
}

/// `integer NOT NULL DEFAULT <value>`.
fn number(name: &str, value: i64) -> Column {
    required(name, Integer).default(DefaultExpr::Int(value))
}

/// `integer NOT NULL DEFAULT 0`, never negative (a CHECK says so).
fn counter(name: &str) -> Column {
    number(name, 0)
}

/// `varchar(len) NOT NULL DEFAULT '<value>'`.
fn setting(name: &str, len: u32, value: &str) -> Column {
    required(name, varchar(len)).default(DefaultExpr::Text(value.to_owned()))
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

/// `CHECK (<column> >= 0)`, named as PostgreSQL names a column's CHECK.
fn non_negative(table: Table, column: &str) -> Table {
    let name = format!("{}_{column}_check", table.name.name);
    table.check(name, format!("{column} >= 0"))
}

/// The column holds an IP address: text the ORM binds, that PostgreSQL's `inet` parser reads.
fn ip_address(table: Table, column: &str) -> Table {
    let name = format!("{}_{column}_check", table.name.name);
    table.constraint(
        name,
        ConstraintKind::Check {
            expr: format!("family({column}::inet) IN (4, 6)"),
            sqlite: Some(format!(
                "{column} NOT GLOB '*[^0-9A-Fa-f:./]*' AND {column} GLOB '*[.:]*'"
            )),
        },
    )
}

fn organizations() -> Table {
    Table::new("organizations")
        .column(id())
        .column(required("name", varchar(255)))
        .column(required("slug", varchar(100)))
        .column(optional("display_name", varchar(255)))
        .column(optional("description", Text))
        .column(optional("website_url", varchar(500)))
        .column(optional("logo_url", varchar(500)))
        .column(optional("contact_email", varchar(255)))
        .column(optional("contact_phone", varchar(20)))
        .column(optional("address_line1", varchar(255)))
        .column(optional("address_line2", varchar(255)))
        .column(optional("city", varchar(100)))
        .column(optional("state_province", varchar(100)))
        .column(optional("postal_code", varchar(20)))
        .column(optional("country_code", varchar(2)))
        .column(setting("organization_type", 30, "individual"))
        .column(optional("industry", varchar(100)))
        .column(optional("employee_count_range", varchar(20)))
        .column(setting("subscription_tier", 50, "free"))
        // Database only (no model column holds it).
        .column(
            optional("subscription_status", varchar(20))
                .default(DefaultExpr::Text("active".to_owned())),
        )
        .column(object("settings"))
        .column(flag("is_active", true))
        .column(flag("is_verified", false))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(instant("deleted_at"))
        .column(array("features"))
        .column(object("customization"))
        .column(instant("trial_ends_at"))
        .column(optional("billing_email", varchar(255)))
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
    let table = Table::new("users")
        .column(id())
        .column(required("email", varchar(255)))
        .column(optional("username", varchar(150)))
        .column(required("password_hash", varchar(255)))
        .column(optional("first_name", varchar(150)))
        .column(optional("last_name", varchar(150)))
        .column(optional("display_name", varchar(255)))
        .column(optional("avatar_url", varchar(500)))
        .column(optional("bio", Text))
        .column(optional("phone_number", varchar(20)))
        .column(optional("secondary_email", varchar(255)))
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
        .column(optional("last_login_ip", varchar(45)))
        .column(optional("organization_id", Uuid))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(instant("deleted_at"))
        .primary_key("users_pkey", &["id"])
        // The plain unique keys serve the service's `email = $1` and `username = $1`.
        .unique("users_email_key", &["email"])
        .unique("users_username_key", &["username"])
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
        );
    let table = ip_address(
        non_negative(table, "failed_login_attempts"),
        "last_login_ip",
    );
    table
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
        .column(optional("job_title", varchar(255)))
        .column(optional("department", varchar(255)))
        .column(optional("manager_user_id", Uuid))
        .column(object("social_links"))
        .column(optional("emergency_contact_name", varchar(255)))
        .column(optional("emergency_contact_phone", varchar(20)))
        .column(optional("emergency_contact_relationship", varchar(100)))
        .column(array("skills"))
        .column(array("interests"))
        .column(array("certifications"))
        // Database only (no model column holds them).
        .column(optional_object("metadata"))
        .column(optional_object("custom_fields"))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(object("preferred_working_hours"))
        .column(array("preferred_communication_methods"))
        .column(flag("onboarding_completed", false))
        .column(optional("onboarding_step", varchar(50)))
        .column(instant("last_activity_at"))
        .column(number("engagement_score", 0))
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
        // Renamed from session_token_hash, refresh_token_hash.
        .column(required("access_token_jti", varchar(255)))
        .column(optional("refresh_token_jti", varchar(255)))
        // Database only (the model splits it into device_* columns and browser).
        .column(optional_object("device_info"))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        // Database only (the model has country_code and city).
        .column(optional_object("location_info"))
        .column(flag("is_active", true))
        .column(required("expires_at", Timestamp))
        // Renamed from last_accessed_at.
        .column(now("last_activity_at"))
        .column(now("created_at"))
        .column(optional("device_id", varchar(255)))
        .column(optional("device_name", varchar(255)))
        .column(optional("device_type", varchar(50)))
        .column(optional("country_code", varchar(2)))
        .column(optional("city", varchar(100)))
        .column(optional("browser", varchar(100)))
        .column(optional("operating_system", varchar(100)))
        .column(optional("revocation_reason", varchar(100)))
        .column(instant("revoked_at"))
        .primary_key("user_sessions_pkey", &["id"])
        // Named after the columns' names at `68d314520251`.
        .unique(
            "user_sessions_session_token_hash_key",
            &["access_token_jti"],
        )
        .unique(
            "user_sessions_refresh_token_hash_key",
            &["refresh_token_jti"],
        );
    ip_address(
        to_users(table, "user_sessions_user_id_fkey", "user_id", Cascade),
        "ip_address",
    )
    .index(Index::new("ix_sessions_expires_at", &["expires_at"]))
    .index(Index::new("ix_sessions_user_id", &["user_id"]))
}

fn mfa_methods() -> Table {
    let table = Table::new("mfa_methods")
        .column(id())
        .column(reference("user_id"))
        .column(required("method_type", varchar(20)))
        // Database only (the destination: phone_number, email or credential_id by type).
        .column(optional("identifier", varchar(255)))
        // Renamed from secret_encrypted.
        .column(optional("secret", Text))
        // Database only.
        .column(optional("backup_codes_encrypted", Text))
        .column(flag("is_primary", false))
        // Database only (the model has verified_at).
        .column(optional("is_verified", Boolean).default(DefaultExpr::Bool(false)))
        // Renamed from verification_attempts.
        .column(counter("failure_count"))
        .column(instant("last_used_at"))
        .column(now("created_at"))
        .column(now("updated_at"))
        .column(flag("is_active", true))
        .column(optional("phone_number", varchar(20)))
        .column(optional("email", varchar(255)))
        .column(optional("credential_id", varchar(255)))
        .column(optional("public_key", Text))
        .column(instant("verified_at"))
        .column(optional("device_name", varchar(255)))
        .column(object("setup_metadata"))
        .primary_key("mfa_methods_pkey", &["id"])
        .unique(
            "uq_user_mfa_method",
            &["user_id", "method_type", "identifier"],
        )
        .check(
            "mfa_methods_method_type_check",
            "method_type IN ('email', 'sms', 'totp', 'backup_codes', 'webauthn')",
        );
    to_users(
        non_negative(table, "failure_count"),
        "mfa_methods_user_id_fkey",
        "user_id",
        Cascade,
    )
    .index(Index::new("ix_mfa_methods_type", &["method_type"]))
    .index(Index::new("ix_mfa_methods_user_id", &["user_id"]))
    .trigger(set_updated_at())
}

fn mfa_challenges() -> Table {
    let table = Table::new("mfa_challenges")
        .column(id())
        .column(reference("user_id"))
        .column(reference("mfa_method_id"))
        // Renamed from challenge_code_hash.
        .column(required("code_hash", varchar(255)))
        .column(required("challenge_type", varchar(20)))
        .column(required("expires_at", Timestamp))
        // Renamed from attempts.
        .column(counter("attempts_used"))
        .column(flag("is_used", false))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        .column(now("created_at"))
        // NOT NULL in the model; existing challenges have none.
        .column(optional("destination", varchar(255)))
        .column(number("max_attempts", 3))
        .column(optional("session_id", Uuid))
        .column(instant("used_at"))
        .primary_key("mfa_challenges_pkey", &["id"])
        .foreign_key(
            "mfa_challenges_mfa_method_id_fkey",
            &["mfa_method_id"],
            "mfa_methods",
            &["id"],
            Cascade,
        );
    let table = ip_address(non_negative(table, "attempts_used"), "ip_address");
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
        .column(required("email", varchar(255)))
        .column(required("token_hash", varchar(255)))
        .column(setting("verification_type", 30, "account_verification"))
        .column(required("expires_at", Timestamp))
        // Database only.
        .column(optional("attempts", Integer).default(DefaultExpr::Int(0)))
        .column(flag("is_verified", false))
        .column(instant("verified_at"))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        .column(now("created_at"))
        .primary_key("email_verifications_pkey", &["id"])
        .unique("email_verifications_token_hash_key", &["token_hash"]);
    let table = ip_address(non_negative(table, "attempts"), "ip_address");
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
        .column(required("token_hash", varchar(255)))
        .column(required("expires_at", Timestamp))
        .column(flag("is_used", false))
        .column(instant("used_at"))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        .column(now("created_at"))
        // NOT NULL in the model; existing resets have none.
        .column(optional("email", varchar(255)))
        .primary_key("password_resets_pkey", &["id"])
        .unique("password_resets_token_hash_key", &["token_hash"]);
    ip_address(
        to_users(table, "password_resets_user_id_fkey", "user_id", Cascade),
        "ip_address",
    )
    .index(Index::new("ix_password_resets_expires_at", &["expires_at"]))
    .index(Index::new("ix_password_resets_user_id", &["user_id"]))
}

fn user_activity_logs() -> Table {
    let table = Table::new("user_activity_logs")
        .column(id())
        .column(reference("user_id"))
        .column(required("action", varchar(100)))
        // Renamed from resource_type (varchar(50)).
        .column(optional("resource", varchar(100)))
        .column(optional("resource_id", varchar(255)))
        // Renamed from details.
        .column(object("event_metadata"))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        // Renamed from timestamp.
        .column(now("created_at"))
        .column(flag("success", true))
        .column(optional("error_message", Text))
        // Last: fbcbc6afff27 changes its type online, through a new column that takes its
        // place (SQLAlchemy names every column, so the position matters to nobody).
        .column(optional("session_id", Uuid))
        .primary_key("user_activity_logs_pkey", &["id"]);
    ip_address(
        to_users(table, "user_activity_logs_user_id_fkey", "user_id", Cascade),
        "ip_address",
    )
    .index(Index::new("ix_activity_logs_action", &["action"]))
    // Named after the column's name at `68d314520251`.
    .index(Index::new("ix_activity_logs_timestamp", &["created_at"]))
    .index(Index::new("ix_activity_logs_user_id", &["user_id"]))
}

fn user_preferences() -> Table {
    let table = Table::new("user_preferences")
        .column(id())
        .column(reference("user_id"))
        // Renamed from preference_key, preference_value.
        .column(required("key", varchar(100)))
        .column(optional("value", Json))
        // Database only.
        .column(optional("preference_type", varchar(50)))
        .column(optional("is_encrypted", Boolean).default(DefaultExpr::Bool(false)))
        .column(now("created_at"))
        .column(now("updated_at"))
        // NOT NULL in the model; existing preferences have none.
        .column(optional("category", varchar(50)))
        .column(optional("description", varchar(255)))
        .column(flag("is_system", false))
        .primary_key("user_preferences_pkey", &["id"]);
    to_users(table, "user_preferences_user_id_fkey", "user_id", Cascade)
        .index(Index::new("ix_preferences_key", &["key"]))
        .index(Index::new("ix_preferences_user_id", &["user_id"]))
        .index(
            Index::new(
                "uq_user_preferences_user_id_category_key",
                &["user_id", "category", "key"],
            )
            .unique(),
        )
        .trigger(set_updated_at())
}

// The two tables the original left behind, kept as they were (types included) under `legacy_`
// names. Their foreign keys to `users_simple` went with that table; they have no defaults.

fn legacy_user_activities_simple() -> Table {
    Table::new("legacy_user_activities_simple")
        .column(required("id", Uuid))
        .column(required("user_id", Uuid))
        .column(required("activity_type", varchar(50)))
        .column(optional("description", Text))
        .column(optional("ip_address", varchar(45)))
        .column(optional("user_agent", Text))
        .column(optional("activity_metadata", Text))
        .column(instant("created_at"))
        .primary_key("user_activities_simple_pkey", &["id"])
}

fn legacy_user_sessions_simple() -> Table {
    Table::new("legacy_user_sessions_simple")
        .column(required("id", Uuid))
        .column(required("user_id", Uuid))
        .column(required("session_token", varchar(255)))
        .column(required("refresh_token", varchar(255)))
        .column(optional("device_name", varchar(255)))
        .column(optional("device_type", varchar(50)))
        .column(optional("user_agent", Text))
        .column(optional("ip_address", varchar(45)))
        .column(optional("country", varchar(100)))
        .column(optional("region", varchar(100)))
        .column(optional("city", varchar(100)))
        .column(optional("is_active", Boolean))
        .column(instant("last_activity"))
        .column(instant("created_at"))
        .column(required("expires_at", Timestamp))
        .primary_key("user_sessions_simple_pkey", &["id"])
        .index(Index::new("ix_user_sessions_simple_refresh_token", &["refresh_token"]).unique())
        .index(Index::new("ix_user_sessions_simple_session_token", &["session_token"]).unique())
}
