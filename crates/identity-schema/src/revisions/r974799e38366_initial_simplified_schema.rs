//! `974799e38366`: the simplified schema, the original tooling's first revision.
//!
//! Four tables, exactly as the spec's section "Revision 974799e38366" lists them. The original
//! had no server defaults (spec defect 4), so neither has this.
//!
//! `users_simple` and `email_verifications_simple` are built by functions that
//! `68d314520251`'s downgrade calls too: it recreates them, and must recreate them identically.

use super::{create_table, drop_table, varchar};
use migrate_core::ColumnType::{Boolean, Integer, Text, Timestamp, Uuid};
use migrate_core::{
    Column, ConstraintKind, ForeignKey, Index, Op, ReferentialAction, Revision, Table,
};

/// The revision.
pub fn revision() -> Revision {
    // The original file's date is unknown: this one is invented, and only orders the list.
    Revision::new("974799e38366", &[], "Initial simplified schema")
        .created("2025-01-06")
    .allow(
        "drop-breaks-release",
        "only its downgrade drops tables: rollback to base empties the database, which is for development and test databases",
    )
    .allow(
        "drop-loses-data",
        "only its downgrade drops tables: rollback to base empties the database, which is for development and test databases",
    )
        .upgrade(
            [
                create_users_simple(),
                create_email_verifications_simple(),
                create_user_activities_simple(),
                create_user_sessions_simple(),
            ]
            .concat(),
        )
        .downgrade(vec![
            drop_table("user_sessions_simple"),
            drop_table("user_activities_simple"),
            drop_table("email_verifications_simple"),
            drop_table("users_simple"),
        ])
}

/// `FOREIGN KEY (user_id) REFERENCES users_simple(id)`, without ON DELETE: the definition of
/// every `*_simple_user_id_fkey`, shared with `68d314520251`, which drops two of them and whose
/// downgrade puts them back.
pub(super) fn references_users_simple() -> ConstraintKind {
    ConstraintKind::ForeignKey(ForeignKey {
        columns: vec!["user_id".to_owned()],
        ref_table: "users_simple".into(),
        ref_columns: vec!["id".to_owned()],
        on_delete: ReferentialAction::NoAction,
        on_update: ReferentialAction::NoAction,
    })
}

/// `users_simple` and its index.
pub(super) fn create_users_simple() -> Vec<Op> {
    create_table(
        Table::new("users_simple")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("email", varchar(255)).not_null())
            .column(Column::new("password_hash", varchar(255)).not_null())
            .column(Column::new("is_verified", Boolean))
            .column(Column::new("status", varchar(30)))
            .column(Column::new("first_name", varchar(150)))
            .column(Column::new("last_name", varchar(150)))
            .column(Column::new("phone_number", varchar(20)))
            .column(Column::new("bio", Text))
            .column(Column::new("avatar_url", varchar(500)))
            .column(Column::new("timezone", varchar(50)))
            .column(Column::new("language", varchar(10)))
            .column(Column::new("last_login_at", Timestamp))
            .column(Column::new("password_changed_at", Timestamp))
            .column(Column::new("failed_login_attempts", Integer))
            .column(Column::new("locked_until", Timestamp))
            .column(Column::new("created_at", Timestamp))
            .column(Column::new("updated_at", Timestamp))
            .column(Column::new("deleted_at", Timestamp))
            .primary_key("users_simple_pkey", &["id"]),
        vec![Index::new("ix_users_simple_email", &["email"]).unique()],
    )
}

/// `email_verifications_simple` and its index.
pub(super) fn create_email_verifications_simple() -> Vec<Op> {
    create_table(
        Table::new("email_verifications_simple")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("email", varchar(255)).not_null())
            .column(Column::new("token_hash", varchar(255)).not_null())
            .column(Column::new("verification_type", varchar(30)))
            .column(Column::new("is_verified", Boolean))
            .column(Column::new("verified_at", Timestamp))
            .column(Column::new("created_at", Timestamp))
            .column(Column::new("expires_at", Timestamp).not_null())
            .primary_key("email_verifications_simple_pkey", &["id"])
            .constraint(
                "email_verifications_simple_user_id_fkey",
                references_users_simple(),
            ),
        vec![Index::new("ix_email_verifications_simple_token_hash", &["token_hash"]).unique()],
    )
}

/// `user_activities_simple` (no index beyond its primary key).
fn create_user_activities_simple() -> Vec<Op> {
    create_table(
        Table::new("user_activities_simple")
            .column(Column::new("id", Uuid).not_null())
            .column(Column::new("user_id", Uuid).not_null())
            .column(Column::new("activity_type", varchar(50)).not_null())
            .column(Column::new("description", Text))
            .column(Column::new("ip_address", varchar(45)))
            .column(Column::new("user_agent", Text))
            .column(Column::new("activity_metadata", Text))
            .column(Column::new("created_at", Timestamp))
            .primary_key("user_activities_simple_pkey", &["id"])
            .constraint(
                "user_activities_simple_user_id_fkey",
                references_users_simple(),
            ),
        vec![],
    )
}

/// `user_sessions_simple` and its indexes.
fn create_user_sessions_simple() -> Vec<Op> {
    create_table(
        Table::new("user_sessions_simple")
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
            .constraint(
                "user_sessions_simple_user_id_fkey",
                references_users_simple(),
            ),
        vec![
            Index::new("ix_user_sessions_simple_refresh_token", &["refresh_token"]).unique(),
            Index::new("ix_user_sessions_simple_session_token", &["session_token"]).unique(),
        ],
    )
}
