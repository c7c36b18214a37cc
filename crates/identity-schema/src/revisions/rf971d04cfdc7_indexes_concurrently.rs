//! `f971d04cfdc7`: the indexes, built and dropped `CONCURRENTLY` (spec `legacy-schema.md`,
//! defects 6, 7 and 8; `service-models.md` §3, "Lookups the schema must serve").
//!
//! - **One index per unique key** (defect 6). The `ix_...` unique indexes that repeat a UNIQUE
//!   constraint on the same column go; the constraint's own index stays and serves the
//!   service's lookups (`email = $1`, `slug = $1`, `token_hash = $1`, `user_id = $1`,
//!   `access_token_jti = $1`, `username = $1`). Every write maintained both.
//! - **Email and username unique up to case among live users** (defect 7), beside the plain
//!   unique keys the lookups need: unique indexes on `lower(email)` and `lower(username)` where
//!   `deleted_at IS NULL`. A `lower()` index serves no `email = $1`, so it is an addition, not a
//!   replacement. Live users that already collide up to case are listed and the revision
//!   refused. The service does not see the conflict in its own duplicate check: registering
//!   `bob@x.io` beside a live `Bob@x.io` fails with an integrity error instead of creating a
//!   second account (`service-models.md` §3, "Email case").
//! - **An index under every foreign key** (defect 8): `user_profiles.manager_user_id` and
//!   `mfa_challenges.mfa_method_id`, without which deleting a user or a method scans the
//!   referring table.
//! - **`user_preferences (user_id, category, key)` unique**: the key the service reads and
//!   writes by (`UPDATE ... WHERE user_id = $1 AND category = $2 AND key = $3`), which the
//!   index serves. Rows from before `3ffba08b0d3f` have no category and never collide (NULLs are
//!   distinct).
//!
//! Every index here is on a table that exists and may be large and busy, so it is built (and
//! dropped) `CONCURRENTLY`: writes go on meanwhile. That cannot run inside a transaction, so this
//! revision runs statement by statement; each statement can run again (a build first drops
//! whatever a failed build left, a drop says `IF EXISTS`, a check only reads), so a run that
//! stopped halfway is finished by running `migrate` again. It is the last revision of the series
//! so that everything before it can still run as one transaction (`--single-transaction`,
//! `psql -1`). On SQLite the same ops are plain index changes, and the revision one transaction.

use super::checks;
use migrate_core::{Index, IndexKey, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "f971d04cfdc7",
        &["411d3d954d7f"],
        "One index per unique key; email and username unique up to case among live users; foreign key and preference indexes (concurrently)",
    )
    .created("2026-12-03")
    .allow("unknown-sql", checks::CHECKS_ONLY_READ)
    .upgrade(upgrade())
    .downgrade(downgrade())
}

/// The unique `ix_...` indexes that repeat a UNIQUE constraint: (table, index, column).
const DUPLICATES: [(&str, &str, &str); 7] = [
    ("organizations", "ix_organizations_slug", "slug"),
    ("users", "ix_users_email", "email"),
    ("users", "ix_users_username", "username"),
    ("user_profiles", "ix_user_profiles_user_id", "user_id"),
    (
        "user_sessions",
        "ix_sessions_token_hash",
        "access_token_jti",
    ),
    (
        "email_verifications",
        "ix_email_verifications_token",
        "token_hash",
    ),
    ("password_resets", "ix_password_resets_token", "token_hash"),
];

/// The key of the service's preference writes.
const PREFERENCE_KEY: [&str; 3] = ["user_id", "category", "key"];

/// The indexes this revision creates, with their tables.
pub(crate) fn created() -> Vec<(&'static str, Index)> {
    let live_lower = |name: &str, column: &str| {
        Index::on_keys(name, vec![IndexKey::Expr(format!("lower({column})"))])
            .unique()
            .filtered("deleted_at IS NULL")
    };
    vec![
        ("users", live_lower("uq_users_lower_email_live", "email")),
        (
            "users",
            live_lower("uq_users_lower_username_live", "username"),
        ),
        (
            "user_profiles",
            Index::new("ix_user_profiles_manager_user_id", &["manager_user_id"]),
        ),
        (
            "mfa_challenges",
            Index::new("ix_mfa_challenges_mfa_method_id", &["mfa_method_id"]),
        ),
        (
            "user_preferences",
            Index::new("uq_user_preferences_user_id_category_key", &PREFERENCE_KEY).unique(),
        ),
    ]
}

fn create(table: &str, index: Index) -> Op {
    Op::CreateIndex {
        table: table.into(),
        index,
        concurrently: true,
    }
}

fn drop(table: &str, name: &str) -> Op {
    Op::DropIndex {
        table: table.into(),
        name: name.to_owned(),
        concurrently: true,
    }
}

fn upgrade() -> Vec<Op> {
    let mut ops = vec![
        checks::live_users_unique_ignoring_case("email"),
        checks::live_users_unique_ignoring_case("username"),
        checks::unique_together("user_preferences", &PREFERENCE_KEY, "upgrade"),
    ];
    ops.extend(
        DUPLICATES
            .iter()
            .map(|(table, index, _)| drop(table, index)),
    );
    ops.extend(
        created()
            .into_iter()
            .map(|(table, index)| create(table, index)),
    );
    ops
}

fn downgrade() -> Vec<Op> {
    let mut ops: Vec<Op> = created()
        .into_iter()
        .rev()
        .map(|(table, index)| drop(table, &index.name))
        .collect();
    ops.extend(
        DUPLICATES
            .iter()
            .rev()
            .map(|(table, index, column)| create(table, Index::new(*index, &[column]).unique())),
    );
    ops
}
