//! `68d314520251`: the enhanced schema, the original tooling's second and last revision.
//!
//! The ten tables match the spec's section "Revision 68d314520251" column for column. What
//! differs from the original revision is what the spec lists as its defects:
//!
//! - defect 1: every index is created once. A UNIQUE constraint brings its own index
//!   (`organizations_slug_key`); the `ix_...` index of the same column is a second, separately
//!   named index that the spec lists too, so it is created here exactly once.
//! - the original threw away the rows of `users_simple` and `email_verifications_simple`; this
//!   one copies them into `users` and `email_verifications` before dropping those tables.
//! - defect 3: the downgrade recreates both tables, copies the rows back and restores the two
//!   foreign keys that the upgrade dropped, so that a rollback to base works.
//!
//! Kept as the original had it, because databases in the field have it and later revisions fix
//! it: no server defaults (defect 4; the application-side defaults are used only to fill the
//! copied rows), `timestamp`/`json`/`varchar(45)` types (defect 5), the duplicate unique indexes
//! (defect 6), and `user_activities_simple`/`user_sessions_simple` left behind (defect 2), without
//! their foreign keys to the dropped `users_simple`.

use super::r974799e38366_initial_simplified_schema::{
    create_email_verifications_simple, create_users_simple, references_users_simple,
};
use super::{add_constraint, copy_rows, create_table, drop_constraint, drop_table, varchar};
use migrate_core::ColumnType::{Boolean, Integer, Json, Text, Timestamp, Uuid};
use migrate_core::{Column, Index, Op, ReferentialAction, Revision, Table};

/// The revision.
pub fn revision() -> Revision {
    // The original file's date is unknown: this one is invented, and only orders the list.
    Revision::new(
        "68d314520251",
        &["974799e38366"],
        "Initial enhanced models migration",
    )
    .created("2025-01-13")
    .allow(
        "constraint-without-not-valid",
        "only its downgrade adds them: the foreign keys of user_activities_simple and user_sessions_simple, tables no release of the service maps, so the scan under their lock holds up no login",
    )
    .allow(
        "drop-breaks-release",
        "users_simple and email_verifications_simple are the simplified schema of 974799e38366, which no release of the service maps (spec service-models.md section 2); the release that uses the enhanced tables is deployed with this revision",
    )
    .allow(
        "drop-loses-data",
        "the upgrade copies the rows of both tables into users and email_verifications before dropping them, and the downgrade copies them back; what the downgrade drops of the enhanced tables is lost, which is why rollback to base is for development databases and runs after `migrate --backup`",
    )
    .upgrade(upgrade())
    .downgrade(downgrade())
}

fn upgrade() -> Vec<Op> {
    // In foreign-key order: each table's referenced tables exist before it.
    let mut ops = [
        create_organizations(),
        create_users(),
        create_user_profiles(),
        create_user_sessions(),
        create_mfa_methods(),
        create_mfa_challenges(),
        create_email_verifications(),
        create_password_resets(),
        create_user_activity_logs(),
        create_user_preferences(),
    ]
    .concat();
    ops.extend([
        // Users first: the copied verifications reference them.
        copy_rows("copy users_simple rows into users", COPY_USERS_UP),
        copy_rows(
            "copy email_verifications_simple rows into email_verifications",
            COPY_EMAIL_VERIFICATIONS_UP,
        ),
        // The two tables that stay would otherwise keep `users_simple` alive; the original lost
        // these constraints to DROP ... CASCADE, this drops them by name.
        drop_constraint(
            "user_activities_simple",
            "user_activities_simple_user_id_fkey",
        ),
        drop_constraint("user_sessions_simple", "user_sessions_simple_user_id_fkey"),
        drop_table("email_verifications_simple"),
        drop_table("users_simple"),
    ]);
    ops
}

fn downgrade() -> Vec<Op> {
    let mut ops = [create_users_simple(), create_email_verifications_simple()].concat();
    ops.extend([
        copy_rows("copy users rows back into users_simple", COPY_USERS_DOWN),
        copy_rows(
            "copy email_verifications rows back into email_verifications_simple",
            COPY_EMAIL_VERIFICATIONS_DOWN,
        ),
        // Checked against existing rows on purpose: a session or activity row whose user was
        // deleted from `users` after the upgrade has nothing to point at. PostgreSQL then names
        // the key and aborts the whole rollback, rather than this revision deleting those rows.
        add_constraint(
            "user_activities_simple",
            "user_activities_simple_user_id_fkey",
            references_users_simple(),
        ),
        add_constraint(
            "user_sessions_simple",
            "user_sessions_simple_user_id_fkey",
            references_users_simple(),
        ),
        // Reverse foreign-key order: nothing references a table when it goes.
        drop_table("user_preferences"),
        drop_table("user_activity_logs"),
        drop_table("password_resets"),
        drop_table("email_verifications"),
        drop_table("mfa_challenges"),
        drop_table("mfa_methods"),
        drop_table("user_sessions"),
        drop_table("user_profiles"),
        drop_table("users"),
        drop_table("organizations"),
    ]);
    ops
}

// The copies. Each `SELECT` list follows its `INSERT` list item for item; an item that is not
// the same-named column is aliased with the column it fills, for the reviewer (SQL ignores it).
// A NOT NULL column that the old table leaves empty gets the application-side default the spec
// lists for it.

/// `users_simple` has no `is_active`: every copied user is active (their `status` still says
/// whether they may sign in). `language` becomes `language_code`. A missing `updated_at` is taken
/// to be the creation time.
const COPY_USERS_UP: &str = "\
INSERT INTO users (
    id, email, password_hash, first_name, last_name, avatar_url, bio, phone_number,
    language_code, timezone, theme_preference, notification_preferences, privacy_settings,
    status, is_verified, is_active, failed_login_attempts,
    locked_until, password_changed_at, last_login_at,
    created_at, updated_at, deleted_at
)
SELECT
    id,
    email,
    password_hash,
    first_name,
    last_name,
    avatar_url,
    bio,
    phone_number,
    COALESCE(language, 'en') AS language_code,
    COALESCE(timezone, 'UTC') AS timezone,
    'light' AS theme_preference,
    '{}' AS notification_preferences,
    '{}' AS privacy_settings,
    COALESCE(status, 'active') AS status,
    COALESCE(is_verified, false) AS is_verified,
    true AS is_active,
    COALESCE(failed_login_attempts, 0) AS failed_login_attempts,
    locked_until,
    password_changed_at,
    last_login_at,
    COALESCE(created_at, CURRENT_TIMESTAMP) AS created_at,
    COALESCE(updated_at, created_at, CURRENT_TIMESTAMP) AS updated_at,
    deleted_at
FROM users_simple";

/// `attempts` did not exist: nobody has tried yet. `ip_address` and `user_agent` stay NULL.
const COPY_EMAIL_VERIFICATIONS_UP: &str = "\
INSERT INTO email_verifications (
    id, user_id, email, token_hash, verification_type, expires_at,
    attempts, is_verified, verified_at, created_at
)
SELECT
    id,
    user_id,
    email,
    token_hash,
    COALESCE(verification_type, 'registration') AS verification_type,
    expires_at,
    0 AS attempts,
    COALESCE(is_verified, false) AS is_verified,
    verified_at,
    COALESCE(created_at, CURRENT_TIMESTAMP) AS created_at
FROM email_verifications_simple";

/// The inverse of [`COPY_USERS_UP`]. What `users_simple` has no column for (username,
/// display name, preferences, organization...) is lost, as a downgrade must lose it.
const COPY_USERS_DOWN: &str = "\
INSERT INTO users_simple (
    id, email, password_hash, is_verified, status, first_name, last_name, phone_number,
    bio, avatar_url, timezone, language, last_login_at, password_changed_at,
    failed_login_attempts, locked_until, created_at, updated_at, deleted_at
)
SELECT
    id,
    email,
    password_hash,
    is_verified,
    status,
    first_name,
    last_name,
    phone_number,
    bio,
    avatar_url,
    timezone,
    language_code AS language,
    last_login_at,
    password_changed_at,
    failed_login_attempts,
    locked_until,
    created_at,
    updated_at,
    deleted_at
FROM users";

/// The inverse of [`COPY_EMAIL_VERIFICATIONS_UP`]; `attempts`, `ip_address` and `user_agent` are
/// lost.
const COPY_EMAIL_VERIFICATIONS_DOWN: &str = "\
INSERT INTO email_verifications_simple (
    id, user_id, email, token_hash, verification_type, is_verified, verified_at,
    created_at, expires_at
)
SELECT
    id,
    user_id,
    email,
    token_hash,
    verification_type,
    is_verified,
    verified_at,
    created_at,
    expires_at
FROM email_verifications";

// The tables, in the spec's column order. Constraints and indexes follow the spec's lists
// (sorted by name there); indexes named like a constraint are that constraint's own index and
// are not created again.

fn create_organizations() -> Vec<Op> {
    create_table(
        Table::new("organizations")
            .column(Column::new("id", Uuid).not_null())
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
            .column(Column::new("organization_type", varchar(30)).not_null())
            .column(Column::new("industry", varchar(100)))
            .column(Column::new("employee_count_range", varchar(20)))
            .column(Column::new("subscription_tier", varchar(20)).not_null())
            .column(Column::new("subscription_status", varchar(20)).not_null())
            .column(Column::new("settings", Json).not_null())
            .column(Column::new("is_active", Boolean).not_null())
            .column(Column::new("is_verified", Boolean).not_null())
            .column(Column::new("created_at", Timestamp).not_null())
            .column(Column::new("updated_at", Timestamp).not_null())
            .column(Column::new("deleted_at", Timestamp))
            .primary_key("organizations_pkey", &["id"])
            .unique("organizations_slug_key", &["slug"]),
        vec![
            Index::new("ix_organizations_name", &["name"]),
            Index::new("ix_organizations_slug", &["slug"]).unique(),
            Index::new("ix_organizations_type", &["organization_type"]),
        ],
    )
}

fn create_users() -> Vec<Op> {
    create_table(
        Table::new("users")
            .column(Column::new("id", Uuid).not_null())
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
            .column(Column::new("language_code", varchar(10)).not_null())
            .column(Column::new("timezone", varchar(50)).not_null())
            .column(Column::new("theme_preference", varchar(20)).not_null())
            .column(Column::new("notification_preferences", Json).not_null())
            .column(Column::new("privacy_settings", Json).not_null())
            .column(Column::new("status", varchar(30)).not_null())
            .column(Column::new("is_verified", Boolean).not_null())
            .column(Column::new("is_active", Boolean).not_null())
            .column(Column::new("failed_login_attempts", Integer).not_null())
            .column(Column::new("locked_until", Timestamp))
            .column(Column::new("password_changed_at", Timestamp))
            .column(Column::new("last_login_at", Timestamp))
            .column(Column::new("last_login_ip", varchar(45)))
            .column(Column::new("organization_id", Uuid))
            .column(Column::new("created_at", Timestamp).not_null())
            .column(Column::new("updated_at", Timestamp).not_null())
            .column(Column::new("deleted_at", Timestamp))
            .unique("users_email_key", &["email"])
            .foreign_key(
                "users_organization_id_fkey",
                &["organization_id"],
                "organizations",
                &["id"],
                ReferentialAction::SetNull,
            )
            .primary_key("users_pkey", &["id"])
            .unique("users_username_key", &["username"]),
        vec![
            Index::new("ix_users_email", &["email"]).unique(),
            Index::new("ix_users_organization_id", &["organization_id"]),
            Index::new("ix_users_status", &["status"]),
            Index::new("ix_users_username", &["username"]).unique(),
        ],
    )
}

fn create_user_profiles() -> Vec<Op> {
    create_table(
        Table::new("user_profiles")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("job_title", varchar(255)))
            .column(Column::new("department", varchar(255)))
            .column(Column::new("manager_user_id", Uuid))
            .column(Column::new("social_links", Json).not_null())
            .column(Column::new("emergency_contact_name", varchar(255)))
            .column(Column::new("emergency_contact_phone", varchar(20)))
            .column(Column::new("emergency_contact_relationship", varchar(100)))
            .column(Column::new("skills", Json).not_null())
            .column(Column::new("interests", Json).not_null())
            .column(Column::new("certifications", Json).not_null())
            .column(Column::new("metadata", Json).not_null())
            .column(Column::new("custom_fields", Json).not_null())
            .column(Column::new("created_at", Timestamp).not_null())
            .column(Column::new("updated_at", Timestamp).not_null())
            .foreign_key(
                "user_profiles_manager_user_id_fkey",
                &["manager_user_id"],
                "users",
                &["id"],
                ReferentialAction::SetNull,
            )
            .primary_key("user_profiles_pkey", &["id"])
            .foreign_key(
                "user_profiles_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            )
            .unique("user_profiles_user_id_key", &["user_id"]),
        vec![Index::new("ix_user_profiles_user_id", &["user_id"]).unique()],
    )
}

fn create_user_sessions() -> Vec<Op> {
    create_table(
        Table::new("user_sessions")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("session_token_hash", varchar(255)).not_null())
            .column(Column::new("refresh_token_hash", varchar(255)))
            .column(Column::new("device_info", Json).not_null())
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", varchar(500)))
            .column(Column::new("location_info", Json).not_null())
            .column(Column::new("is_active", Boolean).not_null())
            .column(Column::new("expires_at", Timestamp).not_null())
            .column(Column::new("last_accessed_at", Timestamp).not_null())
            .column(Column::new("created_at", Timestamp).not_null())
            .primary_key("user_sessions_pkey", &["id"])
            .unique(
                "user_sessions_refresh_token_hash_key",
                &["refresh_token_hash"],
            )
            .unique(
                "user_sessions_session_token_hash_key",
                &["session_token_hash"],
            )
            .foreign_key(
                "user_sessions_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_sessions_expires_at", &["expires_at"]),
            Index::new("ix_sessions_token_hash", &["session_token_hash"]).unique(),
            Index::new("ix_sessions_user_id", &["user_id"]),
        ],
    )
}

fn create_mfa_methods() -> Vec<Op> {
    create_table(
        Table::new("mfa_methods")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("method_type", varchar(20)).not_null())
            .column(Column::new("identifier", varchar(255)).not_null())
            .column(Column::new("secret_encrypted", Text))
            .column(Column::new("backup_codes_encrypted", Text))
            .column(Column::new("is_primary", Boolean).not_null())
            .column(Column::new("is_verified", Boolean).not_null())
            .column(Column::new("verification_attempts", Integer).not_null())
            .column(Column::new("last_used_at", Timestamp))
            .column(Column::new("created_at", Timestamp).not_null())
            .column(Column::new("updated_at", Timestamp).not_null())
            .primary_key("mfa_methods_pkey", &["id"])
            .foreign_key(
                "mfa_methods_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            )
            .unique(
                "uq_user_mfa_method",
                &["user_id", "method_type", "identifier"],
            ),
        vec![
            Index::new("ix_mfa_methods_type", &["method_type"]),
            Index::new("ix_mfa_methods_user_id", &["user_id"]),
        ],
    )
}

fn create_mfa_challenges() -> Vec<Op> {
    create_table(
        Table::new("mfa_challenges")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("mfa_method_id", Uuid).not_null())
            .column(Column::new("challenge_code_hash", varchar(255)).not_null())
            .column(Column::new("challenge_type", varchar(20)).not_null())
            .column(Column::new("expires_at", Timestamp).not_null())
            .column(Column::new("attempts", Integer).not_null())
            .column(Column::new("is_used", Boolean).not_null())
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", varchar(500)))
            .column(Column::new("created_at", Timestamp).not_null())
            .foreign_key(
                "mfa_challenges_mfa_method_id_fkey",
                &["mfa_method_id"],
                "mfa_methods",
                &["id"],
                ReferentialAction::Cascade,
            )
            .primary_key("mfa_challenges_pkey", &["id"])
            .foreign_key(
                "mfa_challenges_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_mfa_challenges_expires_at", &["expires_at"]),
            Index::new("ix_mfa_challenges_user_id", &["user_id"]),
        ],
    )
}

fn create_email_verifications() -> Vec<Op> {
    create_table(
        Table::new("email_verifications")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("email", varchar(255)).not_null())
            .column(Column::new("token_hash", varchar(255)).not_null())
            .column(Column::new("verification_type", varchar(30)).not_null())
            .column(Column::new("expires_at", Timestamp).not_null())
            .column(Column::new("attempts", Integer).not_null())
            .column(Column::new("is_verified", Boolean).not_null())
            .column(Column::new("verified_at", Timestamp))
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", varchar(500)))
            .column(Column::new("created_at", Timestamp).not_null())
            .primary_key("email_verifications_pkey", &["id"])
            .unique("email_verifications_token_hash_key", &["token_hash"])
            .foreign_key(
                "email_verifications_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_email_verifications_expires_at", &["expires_at"]),
            Index::new("ix_email_verifications_token", &["token_hash"]).unique(),
            Index::new("ix_email_verifications_user_id", &["user_id"]),
        ],
    )
}

fn create_password_resets() -> Vec<Op> {
    create_table(
        Table::new("password_resets")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("token_hash", varchar(255)).not_null())
            .column(Column::new("expires_at", Timestamp).not_null())
            .column(Column::new("is_used", Boolean).not_null())
            .column(Column::new("used_at", Timestamp))
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", varchar(500)))
            .column(Column::new("created_at", Timestamp).not_null())
            .primary_key("password_resets_pkey", &["id"])
            .unique("password_resets_token_hash_key", &["token_hash"])
            .foreign_key(
                "password_resets_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_password_resets_expires_at", &["expires_at"]),
            Index::new("ix_password_resets_token", &["token_hash"]).unique(),
            Index::new("ix_password_resets_user_id", &["user_id"]),
        ],
    )
}

fn create_user_activity_logs() -> Vec<Op> {
    create_table(
        Table::new("user_activity_logs")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("action", varchar(100)).not_null())
            .column(Column::new("resource_type", varchar(50)))
            .column(Column::new("resource_id", varchar(255)))
            .column(Column::new("details", Json).not_null())
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", varchar(500)))
            .column(Column::new("session_id", varchar(255)))
            .column(Column::new("timestamp", Timestamp).not_null())
            .primary_key("user_activity_logs_pkey", &["id"])
            .foreign_key(
                "user_activity_logs_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_activity_logs_action", &["action"]),
            Index::new("ix_activity_logs_timestamp", &["timestamp"]),
            Index::new("ix_activity_logs_user_id", &["user_id"]),
        ],
    )
}

fn create_user_preferences() -> Vec<Op> {
    create_table(
        Table::new("user_preferences")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("preference_key", varchar(100)).not_null())
            .column(Column::new("preference_value", Json).not_null())
            .column(Column::new("preference_type", varchar(50)).not_null())
            .column(Column::new("is_encrypted", Boolean).not_null())
            .column(Column::new("created_at", Timestamp).not_null())
            .column(Column::new("updated_at", Timestamp).not_null())
            .unique("uq_user_preference_key", &["user_id", "preference_key"])
            .primary_key("user_preferences_pkey", &["id"])
            .foreign_key(
                "user_preferences_user_id_fkey",
                &["user_id"],
                "users",
                &["id"],
                ReferentialAction::Cascade,
            ),
        vec![
            Index::new("ix_preferences_key", &["preference_key"]),
            Index::new("ix_preferences_user_id", &["user_id"]),
        ],
    )
}
