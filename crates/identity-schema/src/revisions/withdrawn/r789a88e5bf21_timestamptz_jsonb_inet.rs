//! `789a88e5bf21`: instants, binary JSON and IP addresses get their own types (spec defect 5).
//!
//! - every `timestamp` column becomes `timestamptz`. The original wrote naive UTC times, so
//!   each existing value is read as UTC (`AT TIME ZONE 'UTC'`), whatever the session's time zone;
//!   the downgrade turns each instant back into the same naive UTC time.
//! - every `json` column becomes `jsonb`. jsonb keeps the same document but not its spelling
//!   (whitespace, key order): the downgrade gives back equal JSON, not the same text. An object
//!   holding a key twice keeps only the last value, which is the one every reader already got
//!   (PostgreSQL's own `json` operators, Python's `json.loads`), so nothing a reader saw changes
//!   and such documents are not refused: a check would cost a parse of every document (a fifth of
//!   this revision's time, measured) to protect values nobody could read.
//! - `ip_address` and `last_login_ip` become `inet`. Text that is not an address is refused
//!   before anything changes, listed as `table.id: column = 'value'`. An address is kept, in
//!   PostgreSQL's canonical spelling (`2001:DB8::0:1` becomes `2001:db8::1`); the downgrade
//!   writes that spelling back with `abbrev`, because `inet::text` would append `/32` or `/128`.
//!
//! The two tables the original left behind (`user_activities_simple`, `user_sessions_simple`)
//! keep their types: they are frozen history, moved aside by a later revision.
//!
//! This is the first revision of the hardening series, so it also runs the data checks of the
//! later ones (live users sharing an email or username up to case, values outside the new CHECK
//! constraints): `upgrade head` then refuses here, before anything changed, instead of after
//! some revisions were committed. Those revisions check again for themselves, for a database
//! that is upgraded one step at a time. Every check is a scan; none writes.

use super::rf64382621770_checks_and_foreign_key_indexes::CHECKS;
use crate::revisions::checks;
use crate::revisions::varchar;
use migrate_core::render::quote_ident;
use migrate_core::ColumnType::{Inet, Json, Jsonb, Timestamp, TimestampTz};
use migrate_core::{ColumnChange, ColumnType, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "789a88e5bf21",
        &["68d314520251"],
        "Use timestamptz, jsonb and inet columns",
    )
    .created("2026-11-24")
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The `timestamp` columns, table by table in the spec's order.
const INSTANTS: [(&str, &str); 28] = [
    ("organizations", "created_at"),
    ("organizations", "updated_at"),
    ("organizations", "deleted_at"),
    ("users", "locked_until"),
    ("users", "password_changed_at"),
    ("users", "last_login_at"),
    ("users", "created_at"),
    ("users", "updated_at"),
    ("users", "deleted_at"),
    ("user_profiles", "created_at"),
    ("user_profiles", "updated_at"),
    ("user_sessions", "expires_at"),
    ("user_sessions", "last_accessed_at"),
    ("user_sessions", "created_at"),
    ("mfa_methods", "last_used_at"),
    ("mfa_methods", "created_at"),
    ("mfa_methods", "updated_at"),
    ("mfa_challenges", "expires_at"),
    ("mfa_challenges", "created_at"),
    ("email_verifications", "expires_at"),
    ("email_verifications", "verified_at"),
    ("email_verifications", "created_at"),
    ("password_resets", "expires_at"),
    ("password_resets", "used_at"),
    ("password_resets", "created_at"),
    ("user_activity_logs", "timestamp"),
    ("user_preferences", "created_at"),
    ("user_preferences", "updated_at"),
];

/// The `json` columns.
const DOCUMENTS: [(&str, &str); 13] = [
    ("organizations", "settings"),
    ("users", "notification_preferences"),
    ("users", "privacy_settings"),
    ("user_profiles", "social_links"),
    ("user_profiles", "skills"),
    ("user_profiles", "interests"),
    ("user_profiles", "certifications"),
    ("user_profiles", "metadata"),
    ("user_profiles", "custom_fields"),
    ("user_sessions", "device_info"),
    ("user_sessions", "location_info"),
    ("user_activity_logs", "details"),
    ("user_preferences", "preference_value"),
];

/// The `varchar(45)` columns that hold IP addresses.
const IP_ADDRESSES: [(&str, &str); 6] = [
    ("users", "last_login_ip"),
    ("user_sessions", "ip_address"),
    ("mfa_challenges", "ip_address"),
    ("email_verifications", "ip_address"),
    ("password_resets", "ip_address"),
    ("user_activity_logs", "ip_address"),
];

fn upgrade() -> Vec<Op> {
    let mut ops = vec![
        checks::create_inet_helper(),
        checks::ip_addresses(&IP_ADDRESSES),
        checks::drop_inet_helper(),
        // For the later revisions of the series (see the module's documentation).
        checks::live_users_unique_ignoring_case("email"),
        checks::live_users_unique_ignoring_case("username"),
        checks::rows_pass(&CHECKS),
    ];
    ops.extend(convert(Direction::Up));
    ops
}

fn downgrade() -> Vec<Op> {
    // Every instant, document and address fits the old types: nothing to check.
    let mut ops = convert(Direction::Down);
    ops.reverse();
    ops
}

/// Which way the columns are converted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// One `AlterColumn` per column: instants, then documents, then addresses.
fn convert(direction: Direction) -> Vec<Op> {
    let up = direction == Direction::Up;
    let instants = INSTANTS.iter().map(|&(table, column)| {
        // `AT TIME ZONE 'UTC'` goes both ways: a naive time read as UTC gives the instant, and
        // an instant seen in UTC gives the naive time back.
        let using = format!("{} AT TIME ZONE 'UTC'", quote_ident(column));
        let ty = if up { TimestampTz } else { Timestamp };
        alter_type(table, column, ty, using)
    });
    let documents = DOCUMENTS.iter().map(|&(table, column)| {
        let (ty, cast) = if up { (Jsonb, "jsonb") } else { (Json, "json") };
        alter_type(
            table,
            column,
            ty,
            format!("{}::{cast}", quote_ident(column)),
        )
    });
    let addresses = IP_ADDRESSES.iter().map(|&(table, column)| {
        let c = quote_ident(column);
        if up {
            alter_type(table, column, Inet, format!("{c}::inet"))
        } else {
            // `abbrev` is the inet output function's spelling; a cast to text would add `/32`.
            alter_type(table, column, varchar(45), format!("abbrev({c})"))
        }
    });
    instants.chain(documents).chain(addresses).collect()
}

/// Changes one column's type with an explicit conversion.
fn alter_type(table: &str, column: &str, ty: ColumnType, using: String) -> Op {
    Op::AlterColumn {
        table: table.into(),
        column: column.to_owned(),
        change: ColumnChange {
            ty: Some((ty, Some(using))),
            ..ColumnChange::default()
        },
    }
}
