//! `3ffba08b0d3f`: the ten tables take the identity service's models (spec
//! `service-models.md`, §1 and §2), so that its unchanged ORM works on them (§5).
//!
//! At `68d314520251` the ORM can insert into `users` and nothing else. This revision changes
//! only the catalog, table by table (one transaction per table when the engine runs phases,
//! so that a login never waits behind a transaction holding two tables; one transaction for
//! all of it otherwise) (no table is rewritten, no row is read beyond the data
//! checks):
//!
//! - **Renames.** A database column that holds a model column's data under another name is
//!   renamed to the model's name ([`RENAMES`], each with the spec's evidence). `RENAME COLUMN`
//!   keeps the values, the indexes and the constraints over them.
//! - **Added columns.** Every model column the database lacks ([`added`]). Nullable, or NOT NULL
//!   with the constant default the model writes (a column the ORM always fills): either way only
//!   the catalog changes, existing rows read the default.
//! - **Database-only columns** with no model counterpart (the spec says "none" or "uncertain")
//!   stay, with their data, and become nullable where they were NOT NULL without a default:
//!   the ORM never names them (§5, condition 2). None is dropped.
//! - **Types follow the model where it is wider**: `user_agent` `varchar(500)` becomes `text`
//!   (the model's `Text`), `subscription_tier` `varchar(20)` becomes `varchar(50)`, `resource`
//!   `varchar(50)` becomes `varchar(100)`. Widening a `varchar`, or making it `text`, is
//!   binary-compatible: PostgreSQL neither rewrites the table nor rebuilds its indexes.
//! - **Server defaults equal to the model's Python defaults**, in the forms the ORM reads back
//!   as its own (§5, condition 7): ids `gen_random_uuid()` (on SQLite 32 hex digits, the form
//!   SQLAlchemy binds), times `now() AT TIME ZONE 'utc'` (a naive UTC `timestamp`, the service's
//!   convention; a plain `now()` would store the session's local time), flags, counters, text
//!   settings and JSON documents as literals. A model column without a Python default gets none.
//! - `uq_user_preference_key (user_id, preference_key)` goes: the service keeps one value per
//!   `(user_id, category, key)`, and the same key under two categories would break its writes.
//!   `f971d04cfdc7` makes `(user_id, category, key)` unique instead.
//!
//! Types that stay: every timestamp is still `timestamp without time zone` holding UTC, and JSON
//! stays `json`. SQLAlchemy binds `$n::JSON` and reads both `json` and `jsonb` back as the same
//! `dict`/`list` (§4), so nothing the service sees would gain from `jsonb`, and converting would
//! rewrite every table holding JSON (all ten but two) for no reader's benefit. IP addresses stay
//! `varchar(45)`: `inet` refuses the ORM's `VARCHAR` binds; `094916cde150` checks their form.
//!
//! As the first revision of the series it runs the data checks of the later ones (values the
//! new CHECKs refuse, addresses that are not addresses, session ids that are not UUIDs, live
//! users whose email or username differ only by case) before changing anything: `migrate` then
//! refuses here, listing the rows, rather than after some revisions were committed. Each later
//! revision checks again for itself. On SQLite, where these checks do not run, the constraint
//! or conversion itself refuses the rows in its own revision's transaction.
//!
//! The downgrade restores `68d314520251` exactly: old names, old types, NOT NULL, no defaults,
//! the `(user_id, preference_key)` key; the added columns and what was written in them go, as a
//! downgrade must lose what the older schema cannot hold. It refuses first, listing the rows,
//! when rows written since the upgrade do not fit the old schema (a NULL where it requires a
//! value, a longer text, a key used twice): choosing their values is not a migration's call.

use super::checks;
use super::r094916cde150_check_constraints_not_valid::{CHECKS, IP_ADDRESSES};
use super::{add_constraint, drop_constraint, varchar};
use migrate_core::ColumnType::{Boolean, Integer, Json, Text, Timestamp, Uuid};
use migrate_core::{Column, ColumnChange, ColumnType, ConstraintKind, DefaultExpr, Op, Revision};

/// Why its downgrade is allowed what lint flags in it (allowances cover both directions; the
/// upgrade has none of these findings).
const DOWNGRADE: &str = "only the downgrade does this: it takes the ten tables back to the columns and types of 68d314520251 for the release that ran on it, dropping what that release does not have (so it runs after `migrate --backup`), with checks that refuse rows which would not fit; its rewrites and scans hold each table's lock for one rollback, an emergency path";

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "3ffba08b0d3f",
        &["68d314520251"],
        "Align the ten tables with the identity service's models",
    )
    .created("2026-12-03")
    .allow(
        "rename-breaks-release",
        "the new names are the service's own (its models, spec service-models.md section 1); no release of the service uses the old ones, and at 68d314520251 its ORM cannot even insert into these tables",
    )
    .allow("unknown-sql", checks::CHECKS_ONLY_READ)
    .allow("drop-breaks-release", DOWNGRADE)
    .allow("drop-loses-data", DOWNGRADE)
    .allow("set-not-null-scan", DOWNGRADE)
    .allow("type-change-rewrite", DOWNGRADE)
    .allow("key-without-using-index", DOWNGRADE)
    .table_by_table()
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// Database columns that hold a model column's data under another name: (table, name at
/// `68d314520251`, the model's name). The evidence is the spec's table "Database-only columns:
/// does a model column hold the same data under another name?" (`service-models.md` §2):
///
/// - `user_sessions.session_token_hash`, `refresh_token_hash`: "`access_token_jti` has the
///   same role (the unique key of the session's access credential)", and `refresh_token_jti`
///   likewise. The values stay what they were (hashes); new rows hold JWT ids. Both are opaque
///   unique keys, and no service code reads either name.
/// - `user_sessions.last_accessed_at`: `last_activity_at`.
/// - `mfa_methods.secret_encrypted`: `secret`, "the same data; the service does not encrypt"
///   (it stores and reads the TOTP secret there). `text` stays: wider than the model's 255.
/// - `mfa_methods.verification_attempts`: `failure_count`.
/// - `mfa_challenges.challenge_code_hash`: `code_hash`; `attempts`: `attempts_used`.
/// - `user_activity_logs.resource_type`: `resource` (the service writes `resource`);
///   `details`: `event_metadata` (same intent); `timestamp`: `created_at` (the service orders,
///   filters and reads by `created_at`).
/// - `user_preferences.preference_key`: `key`; `preference_value`: `value` (the service looks
///   up and writes by these names).
///
/// Not renamed, because the spec names no single column with the same data: `device_info`
/// (split over `device_id`, `device_name`...), `location_info` (`country_code`, `city`),
/// `mfa_methods.identifier` (one of `phone_number`, `email`, `credential_id` by method type),
/// `backup_codes_encrypted` (`secret` for one type, and `secret` is taken), `is_verified`
/// (`verified_at IS NOT NULL`), and the columns it answers "none" or "uncertain" for
/// (`subscription_status`, `metadata`, `custom_fields`, `email_verifications.attempts`,
/// `preference_type`, `is_encrypted`). They stay beside the model's columns.
pub const RENAMES: [(&str, &str, &str); 12] = [
    ("user_sessions", "session_token_hash", "access_token_jti"),
    ("user_sessions", "refresh_token_hash", "refresh_token_jti"),
    ("user_sessions", "last_accessed_at", "last_activity_at"),
    ("mfa_methods", "secret_encrypted", "secret"),
    ("mfa_methods", "verification_attempts", "failure_count"),
    ("mfa_challenges", "challenge_code_hash", "code_hash"),
    ("mfa_challenges", "attempts", "attempts_used"),
    ("user_activity_logs", "resource_type", "resource"),
    ("user_activity_logs", "details", "event_metadata"),
    ("user_activity_logs", "timestamp", "created_at"),
    ("user_preferences", "preference_key", "key"),
    ("user_preferences", "preference_value", "value"),
];

/// How an existing column changes (named as after [`RENAMES`]); the downgrade gives back `from`.
struct Change {
    table: &'static str,
    column: &'static str,
    /// A wider type: (new, as at `68d314520251`).
    ty: Option<(ColumnType, ColumnType)>,
    /// NOT NULL without a default at `68d314520251`, and never named by the ORM: nullable now.
    nullable: bool,
    /// The server default (`68d314520251` has none).
    default: Option<DefaultExpr>,
}

/// A server default on an existing column.
fn default(table: &'static str, column: &'static str, value: DefaultExpr) -> Change {
    Change {
        table,
        column,
        ty: None,
        nullable: false,
        default: Some(value),
    }
}

/// A database-only column that becomes nullable, with the default the original wrote in Python
/// (if any), so that the rows the ORM inserts still get it.
fn database_only(table: &'static str, column: &'static str, value: Option<DefaultExpr>) -> Change {
    Change {
        table,
        column,
        ty: None,
        nullable: true,
        default: value,
    }
}

/// A wider type, and the default if any.
fn widened(
    table: &'static str,
    column: &'static str,
    to: ColumnType,
    from: ColumnType,
    value: Option<DefaultExpr>,
) -> Change {
    Change {
        table,
        column,
        ty: Some((to, from)),
        nullable: false,
        default: value,
    }
}

fn text(value: &str) -> DefaultExpr {
    DefaultExpr::Text(value.to_owned())
}

fn object() -> DefaultExpr {
    DefaultExpr::Json("{}".to_owned())
}

fn array() -> DefaultExpr {
    DefaultExpr::Json("[]".to_owned())
}

/// Every change of an existing column, table by table in the spec's order. Defaults are the
/// model's Python defaults (`service-models.md` §1), not the original's: `verification_type`
/// gets the model's `'account_verification'` (the original wrote `'registration'`).
fn changes() -> Vec<Change> {
    use DefaultExpr::{Bool, Int, RandomUuidHex as Id, UtcNow as Now};
    let user_agent = |table| widened(table, "user_agent", Text, varchar(500), None);
    vec![
        default("organizations", "id", Id),
        default("organizations", "organization_type", text("individual")),
        widened(
            "organizations",
            "subscription_tier",
            varchar(50),
            varchar(20),
            Some(text("free")),
        ),
        database_only("organizations", "subscription_status", Some(text("active"))),
        default("organizations", "settings", object()),
        default("organizations", "is_active", Bool(true)),
        default("organizations", "is_verified", Bool(false)),
        default("organizations", "created_at", Now),
        default("organizations", "updated_at", Now),
        default("users", "id", Id),
        default("users", "language_code", text("en")),
        default("users", "timezone", text("UTC")),
        default("users", "theme_preference", text("light")),
        default("users", "notification_preferences", object()),
        default("users", "privacy_settings", object()),
        default("users", "status", text("pending_verification")),
        default("users", "is_verified", Bool(false)),
        default("users", "is_active", Bool(true)),
        default("users", "failed_login_attempts", Int(0)),
        default("users", "created_at", Now),
        default("users", "updated_at", Now),
        default("user_profiles", "id", Id),
        default("user_profiles", "social_links", object()),
        default("user_profiles", "skills", array()),
        default("user_profiles", "interests", array()),
        default("user_profiles", "certifications", array()),
        database_only("user_profiles", "metadata", Some(object())),
        database_only("user_profiles", "custom_fields", Some(object())),
        default("user_profiles", "created_at", Now),
        default("user_profiles", "updated_at", Now),
        default("user_sessions", "id", Id),
        database_only("user_sessions", "device_info", Some(object())),
        user_agent("user_sessions"),
        database_only("user_sessions", "location_info", Some(object())),
        default("user_sessions", "is_active", Bool(true)),
        default("user_sessions", "last_activity_at", Now),
        default("user_sessions", "created_at", Now),
        default("mfa_methods", "id", Id),
        database_only("mfa_methods", "identifier", None),
        default("mfa_methods", "is_primary", Bool(false)),
        database_only("mfa_methods", "is_verified", Some(Bool(false))),
        default("mfa_methods", "failure_count", Int(0)),
        default("mfa_methods", "created_at", Now),
        default("mfa_methods", "updated_at", Now),
        default("mfa_challenges", "id", Id),
        default("mfa_challenges", "attempts_used", Int(0)),
        default("mfa_challenges", "is_used", Bool(false)),
        user_agent("mfa_challenges"),
        default("mfa_challenges", "created_at", Now),
        default("email_verifications", "id", Id),
        default(
            "email_verifications",
            "verification_type",
            text("account_verification"),
        ),
        database_only("email_verifications", "attempts", Some(Int(0))),
        default("email_verifications", "is_verified", Bool(false)),
        user_agent("email_verifications"),
        default("email_verifications", "created_at", Now),
        default("password_resets", "id", Id),
        default("password_resets", "is_used", Bool(false)),
        user_agent("password_resets"),
        default("password_resets", "created_at", Now),
        default("user_activity_logs", "id", Id),
        widened(
            "user_activity_logs",
            "resource",
            varchar(100),
            varchar(50),
            None,
        ),
        default("user_activity_logs", "event_metadata", object()),
        user_agent("user_activity_logs"),
        default("user_activity_logs", "created_at", Now),
        default("user_preferences", "id", Id),
        // The model's `value` is nullable without a default: an unset value is sent as NULL.
        database_only("user_preferences", "value", None),
        database_only("user_preferences", "preference_type", None),
        database_only("user_preferences", "is_encrypted", Some(Bool(false))),
        default("user_preferences", "created_at", Now),
        default("user_preferences", "updated_at", Now),
    ]
}

/// The model columns `68d314520251` lacks, appended in the model's order.
///
/// A column the model fills with a Python default is NOT NULL with that default as a constant:
/// the ORM always writes a value there (an unset JSON attribute is `{}` or `[]`, a JSON `None`
/// is the JSON `null`, not SQL NULL), and existing rows read the default without a rewrite.
/// The others are nullable, including three the model declares NOT NULL
/// (`mfa_challenges.destination`, `password_resets.email`, `user_preferences.category`): the
/// existing rows have no value for them, and inventing one is not a migration's call. The
/// service always sets them; the database cannot ask it to until those rows are gone.
pub fn added() -> Vec<(&'static str, Column)> {
    let nullable = Column::new;
    let with = |name: &str, ty: ColumnType, value: DefaultExpr| {
        Column::new(name, ty).not_null().default(value)
    };
    vec![
        ("organizations", with("features", Json, array())),
        ("organizations", with("customization", Json, object())),
        ("organizations", nullable("trial_ends_at", Timestamp)),
        ("organizations", nullable("billing_email", varchar(255))),
        (
            "user_profiles",
            with("preferred_working_hours", Json, object()),
        ),
        (
            "user_profiles",
            with("preferred_communication_methods", Json, array()),
        ),
        (
            "user_profiles",
            with("onboarding_completed", Boolean, DefaultExpr::Bool(false)),
        ),
        ("user_profiles", nullable("onboarding_step", varchar(50))),
        ("user_profiles", nullable("last_activity_at", Timestamp)),
        (
            "user_profiles",
            with("engagement_score", Integer, DefaultExpr::Int(0)),
        ),
        ("user_sessions", nullable("device_id", varchar(255))),
        ("user_sessions", nullable("device_name", varchar(255))),
        ("user_sessions", nullable("device_type", varchar(50))),
        ("user_sessions", nullable("country_code", varchar(2))),
        ("user_sessions", nullable("city", varchar(100))),
        ("user_sessions", nullable("browser", varchar(100))),
        ("user_sessions", nullable("operating_system", varchar(100))),
        ("user_sessions", nullable("revocation_reason", varchar(100))),
        ("user_sessions", nullable("revoked_at", Timestamp)),
        (
            "mfa_methods",
            with("is_active", Boolean, DefaultExpr::Bool(true)),
        ),
        ("mfa_methods", nullable("phone_number", varchar(20))),
        ("mfa_methods", nullable("email", varchar(255))),
        ("mfa_methods", nullable("credential_id", varchar(255))),
        ("mfa_methods", nullable("public_key", Text)),
        ("mfa_methods", nullable("verified_at", Timestamp)),
        ("mfa_methods", nullable("device_name", varchar(255))),
        ("mfa_methods", with("setup_metadata", Json, object())),
        ("mfa_challenges", nullable("destination", varchar(255))),
        (
            "mfa_challenges",
            with("max_attempts", Integer, DefaultExpr::Int(3)),
        ),
        ("mfa_challenges", nullable("session_id", Uuid)),
        ("mfa_challenges", nullable("used_at", Timestamp)),
        ("password_resets", nullable("email", varchar(255))),
        (
            "user_activity_logs",
            with("success", Boolean, DefaultExpr::Bool(true)),
        ),
        ("user_activity_logs", nullable("error_message", Text)),
        ("user_preferences", nullable("category", varchar(50))),
        ("user_preferences", nullable("description", varchar(255))),
        (
            "user_preferences",
            with("is_system", Boolean, DefaultExpr::Bool(false)),
        ),
    ]
}

/// The key the service's writes would break, and the columns it was on (as at head).
const PREFERENCE_KEY: (&str, &str, [&str; 2]) = (
    "user_preferences",
    "uq_user_preference_key",
    ["user_id", "key"],
);

/// The ten tables, parents first: the order in which the upgrade changes them. Spelled out
/// here rather than taken from `crate::TABLES`: a revision stays what it was when released.
const TABLES: [&str; 10] = [
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

/// The checks, then table by table (parents first) its renames, the key that goes, its added
/// columns and one run of column changes (one `ALTER TABLE`): each table's part commits on its
/// own when the engine runs phases ([`Revision::table_by_table`]), so no transaction holds the
/// exclusive lock of more than one table the service writes to.
fn upgrade() -> Vec<Op> {
    let mut ops = checks_of_the_series();
    let (key_table, key, _) = PREFERENCE_KEY;
    let added = added();
    let changes = changes();
    for table in TABLES {
        ops.extend(
            RENAMES
                .iter()
                .filter(|(t, _, _)| *t == table)
                .map(|&(table, from, to)| Op::RenameColumn {
                    table: table.into(),
                    from: from.to_owned(),
                    to: to.to_owned(),
                }),
        );
        if table == key_table {
            ops.push(drop_constraint(table, key));
        }
        ops.extend(
            added
                .iter()
                .filter(|(t, _)| *t == table)
                .map(|(table, column)| Op::AddColumn {
                    table: (*table).into(),
                    column: column.clone(),
                }),
        );
        ops.extend(
            changes
                .iter()
                .filter(|c| c.table == table)
                .map(|c| Op::AlterColumn {
                    table: c.table.into(),
                    column: c.column.to_owned(),
                    change: ColumnChange {
                        ty: c.ty.clone().map(|(to, _)| (to, None)),
                        nullable: c.nullable.then_some(true),
                        default: c.default.clone().map(Some),
                    },
                }),
        );
    }
    ops
}

/// The data checks of the whole series, on the names of `68d314520251` (they run before the
/// renames): what `094916cde150` to `f971d04cfdc7` would refuse, found before anything changes.
fn checks_of_the_series() -> Vec<Op> {
    let before_renames = |table: &str, column: &'static str| -> &'static str {
        RENAMES
            .iter()
            .find(|(t, _, to)| *t == table && *to == column)
            .map_or(column, |(_, from, _)| from)
    };
    let rules: Vec<(&str, &str, String)> = CHECKS
        .iter()
        .map(|c| {
            let old = before_renames(c.table, c.column);
            (c.table, old, c.expr.replace(c.column, old))
        })
        .collect();
    vec![
        checks::create_inet_helper(),
        checks::valid_ip_addresses(&IP_ADDRESSES),
        checks::drop_inet_helper(),
        checks::create_uuid_helper(),
        checks::uuids(&[("user_activity_logs", "session_id")]),
        checks::drop_uuid_helper(),
        checks::rules_pass(&rules),
        checks::live_users_unique_ignoring_case("email"),
        checks::live_users_unique_ignoring_case("username"),
    ]
}

fn downgrade() -> Vec<Op> {
    let changes = changes();
    let must_hold: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c.nullable)
        .map(|c| (c.table, c.column))
        .collect();
    let must_fit: Vec<(&str, &str, u32)> = changes
        .iter()
        .filter_map(|c| match &c.ty {
            Some((_, ColumnType::Varchar(Some(len)))) => Some((c.table, c.column, *len)),
            _ => None,
        })
        .collect();
    let (table, key, columns) = PREFERENCE_KEY;
    let mut ops = vec![
        checks::no_nulls_before_downgrade(&must_hold),
        checks::fit_before_downgrade(&must_fit),
        checks::unique_together(table, &columns, "downgrade"),
    ];
    ops.extend(changes.into_iter().rev().map(|c| Op::AlterColumn {
        table: c.table.into(),
        column: c.column.to_owned(),
        change: ColumnChange {
            ty: c.ty.map(|(_, from)| (from, None)),
            nullable: c.nullable.then_some(false),
            default: c.default.map(|_| None),
        },
    }));
    ops.extend(
        added()
            .into_iter()
            .rev()
            .map(|(table, column)| Op::DropColumn {
                table: table.into(),
                column: column.name,
            }),
    );
    ops.push(add_constraint(
        table,
        key,
        ConstraintKind::Unique {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        },
    ));
    ops.extend(
        RENAMES
            .iter()
            .rev()
            .map(|&(table, from, to)| Op::RenameColumn {
                table: table.into(),
                from: to.to_owned(),
                to: from.to_owned(),
            }),
    );
    ops
}
