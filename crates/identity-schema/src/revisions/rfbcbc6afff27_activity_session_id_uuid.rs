//! `fbcbc6afff27`: `user_activity_logs.session_id` becomes `uuid`, the model's type.
//!
//! At `68d314520251` it is `varchar(255)`. SQLAlchemy's `UUID(as_uuid=True)` writes into it
//! (PostgreSQL converts), but reads back a `str`, never equal to the `uuid.UUID` it wrote, and an
//! equality lookup with a `::UUID` bind fails: there is no `varchar = uuid` operator
//! (`service-models.md` §2, `user_activity_logs`, and §5, condition 1).
//!
//! Of the whole series this is the one change PostgreSQL cannot make in the catalog: a plain
//! `ALTER COLUMN .. TYPE uuid` rewrites the table, with its indexes, under an exclusive lock
//! that queues every query of the table for as long. So it is an online type change
//! ([`Op::AlterColumnTypeOnline`]): a new `uuid` column kept in step by a trigger, filled in
//! batches of 1,000 rows (each its own short transaction, resumable), its index built
//! concurrently, then swapped in by one short transaction and the old column dropped. Values
//! that are not UUIDs are listed and the revision refused before anything changes; a UUID
//! spelled in any form PostgreSQL reads (upper case, braces, no hyphens) is kept as that UUID.
//! The downgrade writes each back as its canonical text, which is how the seed and the service
//! write them, the same online way. (Rewritten in 0.2.0 before its release: until then it was
//! the blocking `ALTER COLUMN`; see the README's Changelog.)
//!
//! On SQLite the column is text either way; the rebuild copies the values as they are.

use super::checks;
use super::varchar;
use migrate_core::{Batching, ColumnType, Op, Revision};

/// The revision.
pub fn revision() -> Revision {
    Revision::new(
        "fbcbc6afff27",
        &["3ffba08b0d3f"],
        "user_activity_logs.session_id becomes uuid",
    )
    .created("2026-12-03")
    .allow("unknown-sql", checks::CHECKS_ONLY_READ)
    .upgrade(vec![
        checks::create_uuid_helper(),
        checks::uuids(&[(TABLE, COLUMN)]),
        checks::drop_uuid_helper(),
        convert(ColumnType::Uuid, "session_id::uuid"),
    ])
    .downgrade(vec![convert(varchar(255), "session_id::text")])
}

const TABLE: &str = "user_activity_logs";
const COLUMN: &str = "session_id";

fn convert(ty: ColumnType, using: &str) -> Op {
    Op::AlterColumnTypeOnline {
        table: TABLE.into(),
        column: COLUMN.to_owned(),
        ty,
        using: Some(using.to_owned()),
        batching: Batching::default(),
    }
}
